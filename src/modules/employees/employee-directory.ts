import type { AppConfig } from '../../config.js';
import type { EntityManager } from '../../db/orm.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import { type Connection, type PageArgs, paginate, withKeyset } from '../../graphql/pagination.js';
import type { UserDirectory } from '../users/user-directory.js';
import { splitDepartmentPath } from './employee-department.entity.js';

/** One employee of the HR mirror, as other modules see it. */
export interface EmployeeRecord {
  employeeNumber: string;
  username: string;
  /** Root first, own department last. */
  departmentPath: string[];
  updatedAt: Date;
}

export interface EmployeeFilter {
  /** Any element of the path (so a department includes its sub-departments). Empty = no filter. */
  departmentName?: string | null;
  /** Case-insensitive substring of the username or the employee number. Empty = no filter. */
  search?: string | null;
}

export interface EmployeeRef {
  userId?: string | null;
  employeeNumber?: string | null;
}

/** Longest filter, department name or identifier accepted as input. */
export const MAX_IDENTIFIER_LENGTH = 200;

interface EmployeeRow {
  employee_number: string;
  username: string;
  dept_full_level_names: string;
  update_time: Date | string;
}

const SELECT_COLUMNS = 'employee_number, username, dept_full_level_names, update_time';
/** The path as an array: the expression the GIN index of the migration is built on (keep them identical). */
const PATH_ARRAY = `string_to_array(dept_full_level_names, ',')`;

function toRecord(row: EmployeeRow): EmployeeRecord {
  return {
    employeeNumber: row.employee_number,
    username: row.username,
    departmentPath: splitDepartmentPath(row.dept_full_level_names),
    updatedAt: row.update_time instanceof Date ? row.update_time : new Date(row.update_time),
  };
}

function checkLength(value: string, what: string): void {
  if (value.length > MAX_IDENTIFIER_LENGTH) {
    throw badInput(`${what} must be at most ${MAX_IDENTIFIER_LENGTH} characters, got ${value.length}`);
  }
}

/**
 * Reads the HR mirror (`employee_department`) and answers SPEC §6's identity questions: which key a
 * user has, which departments exist, who is under a department. Stateless; every call takes the
 * EntityManager of its request, job or transaction, so it sees that transaction's writes.
 */
export class EmployeeDirectory {
  constructor(
    private readonly config: AppConfig,
    private readonly users: UserDirectory,
  ) {}

  /** HR_SYNC_ENABLED: employees are keyed by employee number and must exist in the mirror. */
  get syncEnabled(): boolean {
    return this.config.hr.enabled;
  }

  async find(em: EntityManager, employeeNumber: string): Promise<EmployeeRecord | null> {
    const rows = await em.execute<EmployeeRow[]>(
      `select ${SELECT_COLUMNS} from employee_department where employee_number = ?`,
      [employeeNumber],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** The records of those numbers that exist, ordered by employee number. */
  async findMany(em: EntityManager, employeeNumbers: string[]): Promise<EmployeeRecord[]> {
    if (employeeNumbers.length === 0) return [];
    const rows = await em.execute<EmployeeRow[]>(
      // A JSON text parameter, not an array: the driver would splice an array into the SQL as a list.
      `select ${SELECT_COLUMNS} from employee_department
       where employee_number in (select jsonb_array_elements_text(?::jsonb)) order by employee_number`,
      [JSON.stringify([...new Set(employeeNumbers)])],
    );
    return rows.map(toRecord);
  }

  /** **Decision** (SPEC §6): a department exists when some path has it as an exact element, not a substring. */
  async departmentExists(em: EntityManager, name: string): Promise<boolean> {
    if (name === '') return false;
    const rows = await em.execute<{ found: boolean }[]>(
      `select exists (select 1 from employee_department where ${PATH_ARRAY} @> array[?::text]) as found`,
      [name],
    );
    return rows[0]?.found === true;
  }

  /**
   * The department's path from the root down to it (as found in one member's path), or null when no
   * employee's path contains it. One row, however many employees the department has. A name found
   * under two parents (East/Sales, West/Sales) answers the first full path in order, so the answer
   * does not change with whichever row PostgreSQL happens to read first.
   */
  async pathToDepartment(em: EntityManager, name: string): Promise<string[] | null> {
    if (name === '') return null;
    const rows = await em.execute<{ dept_full_level_names: string }[]>(
      `select dept_full_level_names from employee_department where ${PATH_ARRAY} @> array[?::text]
        order by dept_full_level_names limit 1`,
      [name],
    );
    if (rows.length === 0) return null;
    const path = splitDepartmentPath(rows[0]!.dept_full_level_names);
    return path.slice(0, path.indexOf(name) + 1);
  }

  /** Every employee whose path contains the department (its own members and those of its sub-departments). */
  async employeesUnder(em: EntityManager, departmentName: string): Promise<EmployeeRecord[]> {
    if (departmentName === '') return [];
    const rows = await em.execute<EmployeeRow[]>(
      `select ${SELECT_COLUMNS} from employee_department where ${PATH_ARRAY} @> array[?::text] order by employee_number`,
      [departmentName],
    );
    return rows.map(toRecord);
  }

  /** A page of employees, ordered by employee number (SPEC §6 `employees`). */
  async list(em: EntityManager, filter: EmployeeFilter, page: PageArgs): Promise<Connection<EmployeeRecord>> {
    const departmentName = filter.departmentName ?? '';
    const search = filter.search ?? '';
    checkLength(departmentName, 'departmentName');
    checkLength(search, 'search');

    const conditions: string[] = [];
    const params: unknown[] = [];
    if (departmentName !== '') {
      conditions.push(`${PATH_ARRAY} @> array[?::text]`);
      params.push(departmentName);
    }
    if (search !== '') {
      // strpos instead of ILIKE: no pattern characters to escape in what the admin typed.
      conditions.push('(strpos(lower(username), lower(?)) > 0 or strpos(lower(employee_number), lower(?)) > 0)');
      params.push(search, search);
    }
    const where = conditions.length > 0 ? `where ${conditions.join(' and ')}` : '';

    return paginate(
      page,
      async (window) => {
        // Employee numbers are unique and the order: the keyset is the last one shown.
        const page = withKeyset(
          where,
          window.afterKey === null ? null : { sql: 'employee_number > ?', params: [window.afterKey] },
        );
        const [rows, counted] = await Promise.all([
          em.execute<EmployeeRow[]>(
            `select ${SELECT_COLUMNS} from employee_department ${page.sql} order by employee_number limit ? offset ?`,
            [...params, ...page.params, window.fetchLimit, window.offset],
          ),
          em.execute<{ total: string | number }[]>(
            `select count(*) as total from employee_department ${where}`,
            params,
          ),
        ]);
        return { items: rows.map(toRecord), totalCount: Number(counted[0]?.total ?? 0) };
      },
      (employee) => employee.employeeNumber,
    );
  }

  /** Every department name that appears as a path element, sorted. */
  async departments(em: EntityManager): Promise<string[]> {
    const rows = await em.execute<{ name: string }[]>(
      `select distinct element as name from employee_department, unnest(${PATH_ARRAY}) as element
       where element <> '' order by element`,
    );
    return rows.map((row) => row.name);
  }

  /**
   * SPEC §6 employee key. Sync on: `{userId}` → the user's employee number, `{employeeNumber}` as is;
   * either way the employee must be in the mirror. Sync off: the key is the user id; `{employeeNumber}`
   * resolves to the user with that number. Unknown → USER_NOT_FOUND naming the identifier; not exactly
   * one of the two → BAD_USER_INPUT.
   */
  async resolveEmployeeKey(em: EntityManager, ref: EmployeeRef): Promise<string> {
    const userId = ref.userId ?? null;
    const employeeNumber = ref.employeeNumber ?? null;
    if ((userId === null) === (employeeNumber === null)) {
      throw badInput('Give exactly one of userId and employeeNumber.');
    }
    if (userId !== null) {
      if (userId.trim() === '') throw badInput('userId must not be empty');
      checkLength(userId, 'userId');
      return this.keyOfUser(em, userId);
    }
    const number = employeeNumber as string;
    if (number.trim() === '') throw badInput('employeeNumber must not be empty');
    checkLength(number, 'employeeNumber');
    return this.keyOfEmployeeNumber(em, number);
  }

  /** The key for the starred-projects push: the employee number when sync is on and the user has a record, else the user id. */
  async starPushKey(em: EntityManager, userId: string): Promise<string> {
    if (!this.syncEnabled) return userId;
    const user = await this.users.findById(userId);
    const number = user?.employeeNumber;
    if (!number) return userId;
    return (await this.find(em, number)) ? number : userId;
  }

  private async keyOfUser(em: EntityManager, userId: string): Promise<string> {
    const user = await this.users.findById(userId);
    if (!user) throw userNotFound(`User ${JSON.stringify(userId)} is not in the user directory.`);
    if (!this.syncEnabled) return user.id;
    const number = user.employeeNumber;
    if (!number) throw userNotFound(`User ${JSON.stringify(userId)} has no employee number.`);
    if (!(await this.find(em, number))) {
      throw userNotFound(
        `User ${JSON.stringify(userId)} has employee number ${JSON.stringify(number)}, which is not in the HR mirror.`,
      );
    }
    return number;
  }

  private async keyOfEmployeeNumber(em: EntityManager, employeeNumber: string): Promise<string> {
    if (this.syncEnabled) {
      if (!(await this.find(em, employeeNumber))) {
        throw userNotFound(`Employee ${JSON.stringify(employeeNumber)} is not in the HR mirror.`);
      }
      return employeeNumber;
    }
    const user = await this.users.findByEmployeeNumber(employeeNumber);
    if (!user)
      throw userNotFound(`No user in the user directory has employee number ${JSON.stringify(employeeNumber)}.`);
    return user.id;
  }
}

function userNotFound(message: string): DomainError {
  return new DomainError(ErrorCode.USER_NOT_FOUND, message);
}
