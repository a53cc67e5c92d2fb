import type { Cents } from '../../../money.js';

/** What the gateway keeps per user: two counters, in integer cents. */
export interface UserQuota {
  total: Cents;
  used: Cents;
}

/** What the gateway keeps per employee. Starred projects stay the CSV text the gateway was sent. */
export interface EmployeePermissions {
  starredProjects: string;
  models: string[];
  starCheck: boolean;
  quotaCheck: boolean;
}

export interface StateSnapshot {
  users: Record<string, UserQuota>;
  employees: Record<string, EmployeePermissions>;
}

/** The simulator's in-memory store. Unknown users read as 0, unknown employees as empty and off. */
export class SimulatorState {
  private readonly users = new Map<string, UserQuota>();
  private readonly employees = new Map<string, EmployeePermissions>();

  getUser(userId: string): UserQuota {
    const user = this.users.get(userId);
    return user ? { ...user } : { total: 0, used: 0 };
  }

  setUser(userId: string, quota: Partial<UserQuota>): UserQuota {
    const user = { ...this.getUser(userId), ...definedOnly(quota) };
    this.users.set(userId, user);
    return { ...user };
  }

  getEmployee(employeeNumber: string): EmployeePermissions {
    const employee = this.employees.get(employeeNumber);
    if (!employee) return { starredProjects: '', models: [], starCheck: false, quotaCheck: false };
    return { ...employee, models: [...employee.models] };
  }

  setEmployee(employeeNumber: string, permissions: Partial<EmployeePermissions>): EmployeePermissions {
    const employee = { ...this.getEmployee(employeeNumber), ...definedOnly(permissions) };
    this.employees.set(employeeNumber, { ...employee, models: [...employee.models] });
    return this.getEmployee(employeeNumber);
  }

  reset(): void {
    this.users.clear();
    this.employees.clear();
  }

  snapshot(): StateSnapshot {
    const users: Record<string, UserQuota> = {};
    for (const id of this.users.keys()) users[id] = this.getUser(id);
    const employees: Record<string, EmployeePermissions> = {};
    for (const number of this.employees.keys()) employees[number] = this.getEmployee(number);
    return { users, employees };
  }
}

/** `{total: undefined}` must not wipe a stored total when spread over it. */
function definedOnly<T extends object>(value: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}
