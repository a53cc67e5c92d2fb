import type { EntityManager } from '../../db/orm.js';
import type { EmployeeDirectory, EmployeeRecord } from '../employees/employee-directory.js';
import type { UserDirectory } from '../users/user-directory.js';
import type { Subject } from './effective-rules.js';

/**
 * Turns employee keys, departments and HR employee numbers into recompute subjects (key + department
 * path), following SPEC §6's employee key. Sync on: the key is the employee number. Sync off: the
 * key is the user id, and a user still gets the department path of the HR record their
 * `employee_number` names, if the mirror has one — so department settings reach them under the key
 * the gateway knows them by.
 */
export class PermissionSubjects {
  constructor(
    private readonly employees: EmployeeDirectory,
    private readonly users: UserDirectory,
  ) {}

  /** One subject for an already resolved employee key. */
  async forKey(em: EntityManager, key: string): Promise<Subject> {
    if (this.employees.syncEnabled) {
      const record = await this.employees.find(em, key);
      return { key, departmentPath: record?.departmentPath ?? [] };
    }
    const user = await this.users.findById(key);
    const record = user?.employeeNumber ? await this.employees.find(em, user.employeeNumber) : null;
    return { key, departmentPath: record?.departmentPath ?? [] };
  }

  /** Everyone under a department (its own members and those of its sub-departments). */
  async forDepartment(em: EntityManager, departmentName: string): Promise<Subject[]> {
    return this.fromRecords(await this.employees.employeesUnder(em, departmentName));
  }

  /** The subjects of these HR employees (as the mirror has them now). */
  async forEmployeeNumbers(em: EntityManager, employeeNumbers: readonly string[]): Promise<Subject[]> {
    if (employeeNumbers.length === 0) return [];
    return this.fromRecords(await this.employees.findMany(em, [...employeeNumbers]));
  }

  /** The employee keys HR employee numbers map to (sync off: the users carrying those numbers). */
  async keysOfEmployeeNumbers(employeeNumbers: readonly string[]): Promise<string[]> {
    if (this.employees.syncEnabled) return [...new Set(employeeNumbers)];
    const byNumber = await this.users.userIdsByEmployeeNumber(employeeNumbers);
    return [...new Set([...byNumber.values()].flat())];
  }

  private async fromRecords(records: readonly EmployeeRecord[]): Promise<Subject[]> {
    if (this.employees.syncEnabled) {
      return records.map((record) => ({ key: record.employeeNumber, departmentPath: record.departmentPath }));
    }
    const byNumber = await this.users.userIdsByEmployeeNumber(records.map((record) => record.employeeNumber));
    return records.flatMap((record) =>
      (byNumber.get(record.employeeNumber) ?? []).map((userId) => ({
        key: userId,
        departmentPath: record.departmentPath,
      })),
    );
  }
}
