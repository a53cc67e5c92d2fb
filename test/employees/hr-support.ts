import type { EntityManager } from '../../src/db/orm.js';
import { silentLogger } from '../../src/logger.js';
import type { EmployeeChangeListener, EmployeeChanges } from '../../src/modules/employees/employee-change-listener.js';
import { EmployeeSyncService } from '../../src/modules/employees/employee-sync.service.js';
import { HrClient } from '../../src/modules/employees/hr-client.js';
import type { HrDepartmentRecord, HrEmployeeRecord } from '../../src/modules/employees/hr-fixture.js';
import { HrSimulator } from '../../src/modules/employees/hr-simulator.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** Test keys: 32 bytes (AES-256) for employees, 24 bytes (AES-192) for departments. */
export const EMPLOYEES_KEY = 'TEST_EMP_KEY_32_BYTES_1234567890';
export const DEPARTMENTS_KEY = 'TEST_DEP_KEY_24_BYTES_12';

export const dept = (id: number, parent: number, name: string): HrDepartmentRecord => ({
  Id: String(id),
  AdminId: parent,
  Name: name,
  DepGrade: 1,
  DepartmentStatus: 1,
});

export const emp = (badge: string, name: string, depId: number | string): HrEmployeeRecord => ({
  badge,
  Name: name,
  DepID: String(depId),
  email: `${badge}@example.com`,
  TEL: '13800000000',
});

/** Corp ─┬─ R&D ─┬─ Platform
 *        │       └─ Apps
 *        └─ Sales */
export const SMALL_DEPARTMENTS = [
  dept(1, 0, 'Corp'),
  dept(2, 1, 'R&D'),
  dept(3, 2, 'Platform'),
  dept(4, 1, 'Sales'),
  dept(5, 2, 'Apps'),
];

export const SMALL_EMPLOYEES = [
  emp('E001', 'Li Lei', 3),
  emp('E002', 'Han Meimei', 4),
  emp('E003', 'Zhang Wei', 2),
  emp('E004', 'Wang Fang', 5),
];

export interface HrTestContext {
  t: TestApp;
  hr: HrSimulator;
  /** The app's own sync service (default retry timings: use for successful syncs). */
  sync: EmployeeSyncService;
  /** The same, with fast retries and a short timeout, for failure tests. */
  fastSync(overrides?: { maxRemovalRatio?: number; timeoutMs?: number }): EmployeeSyncService;
  em(): EntityManager;
  /** Every mirror row with every column, for "nothing changed" checks. */
  snapshot(): Promise<unknown[]>;
  stop(): Promise<void>;
}

export async function startHrTestApp(
  label: string,
  options: { env?: Record<string, string>; xml?: boolean } = {},
): Promise<HrTestContext> {
  const hr = new HrSimulator({
    employeesKey: EMPLOYEES_KEY,
    departmentsKey: DEPARTMENTS_KEY,
    xml: options.xml,
    fixture: { employees: SMALL_EMPLOYEES, departments: SMALL_DEPARTMENTS },
  });
  await hr.start(0);
  const t = await startTestApp({
    label,
    env: {
      HR_SYNC_ENABLED: 'true',
      HR_EMPLOYEES_URL: hr.employeesUrl,
      HR_DEPARTMENTS_URL: hr.departmentsUrl,
      HR_EMPLOYEES_KEY: EMPLOYEES_KEY,
      HR_DEPARTMENTS_KEY: DEPARTMENTS_KEY,
      ...options.env,
    },
  });
  const clients: HrClient[] = [];
  return {
    t,
    hr,
    sync: t.app.services.employeeSync,
    fastSync(overrides = {}) {
      const client = new HrClient(
        { timeoutMs: overrides.timeoutMs ?? 2000, retries: 2, retryBaseDelayMs: 5 },
        silentLogger(),
      );
      clients.push(client);
      const config = structuredClone(t.config);
      if (overrides.maxRemovalRatio !== undefined) config.hr.maxRemovalRatio = overrides.maxRemovalRatio;
      return new EmployeeSyncService(config, client);
    },
    em: () => t.app.services.orm.em.fork(),
    snapshot: () => t.app.services.orm.em.fork().execute('select * from employee_department order by employee_number'),
    async stop() {
      for (const client of clients) client.close();
      await t.stop();
      await hr.stop();
    },
  };
}

/** A listener that records what it was told, and where (inside the transaction or after it). */
export class RecordingListener implements EmployeeChangeListener {
  before: EmployeeChanges[] = [];
  after: EmployeeChanges[] = [];
  /** Mirror rows seen from inside the transaction, per beforeCommit call. */
  rowsSeenBefore: number[] = [];
  failBefore: Error | null = null;
  failAfter: Error | null = null;
  /** Extra work inside the transaction (e.g. a write that must roll back with the sync). */
  onBefore: ((em: EntityManager) => Promise<void>) | null = null;

  async beforeCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    this.before.push(structuredClone(changes));
    const rows = await em.execute<{ n: string }[]>('select count(*) as n from employee_department');
    this.rowsSeenBefore.push(Number(rows[0]?.n));
    if (this.onBefore) await this.onBefore(em);
    if (this.failBefore) throw this.failBefore;
  }

  async afterCommit(_em: EntityManager, changes: EmployeeChanges): Promise<void> {
    this.after.push(structuredClone(changes));
    if (this.failAfter) throw this.failAfter;
  }

  reset(): void {
    this.before = [];
    this.after = [];
    this.rowsSeenBefore = [];
    this.failBefore = null;
    this.failAfter = null;
    this.onBefore = null;
  }
}

export async function mirror(
  em: EntityManager,
): Promise<Record<string, { username: string; path: string; depId: string | null }>> {
  const rows = await em.execute<
    { employee_number: string; username: string; dept_full_level_names: string; dep_id: string | null }[]
  >(
    'select employee_number, username, dept_full_level_names, dep_id from employee_department order by employee_number',
  );
  return Object.fromEntries(
    rows.map((row) => [
      row.employee_number,
      { username: row.username, path: row.dept_full_level_names, depId: row.dep_id },
    ]),
  );
}
