import type { MikroORM } from '@mikro-orm/postgresql';
import type { AppConfig } from '../../config.js';
import type { EntityManager } from '../../db/orm.js';
import { DomainError, ErrorCode, isDomainError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { buildDepartmentHierarchy } from './department-hierarchy.js';
import { type EmployeeChangeListener, type EmployeeChanges, hasChanges } from './employee-change-listener.js';
import { joinDepartmentPath } from './employee-department.entity.js';
import { type FeedEmployee, planReconciliation, type ReconciliationPlan } from './employee-reconciliation.js';
import { type HrClient, HrUnavailableError } from './hr-client.js';
import { decryptHrPayload, HrPayloadError } from './hr-crypto.js';
import { parseDepartments, parseEmployees } from './hr-payload.js';

/**
 * Employee sync (SPEC §7): read both HR feeds, build department paths, and reconcile the mirror in
 * one transaction; the permissions module's listener deletes what must go inside that transaction
 * and recomputes and pushes after it. Every failure — refused, unreachable, wrong key, malformed —
 * changes nothing and throws DomainError(HR_SYNC_FAILED) with a message starting `HR_SYNC_FAILED:`.
 */

export interface EmployeeSyncCounters {
  /** Employees in the feed, plus employees removed because they left it. */
  processed: number;
  succeeded: number;
  /** Feed records skipped: unknown department, repeated badge. */
  failed: number;
}

export interface EmployeeSyncResult extends EmployeeSyncCounters {
  changes: EmployeeChanges;
  unchanged: number;
  skipped: number;
}

export interface EmployeeSyncOptions {
  /** Aborts HTTP requests and back-off waits (shutdown). */
  signal?: AbortSignal;
}

/** Any fixed number: serialises syncs across instances sharing the database. */
const SYNC_LOCK_KEY = 7_301_124_110;

function syncFailed(reason: string, cause?: unknown): DomainError {
  return new DomainError(ErrorCode.HR_SYNC_FAILED, `HR_SYNC_FAILED: ${reason}`, {}, { cause });
}

interface Feeds {
  employees: FeedEmployee[];
  skippedUnknownDepartment: number;
  skippedDuplicate: number;
}

export class EmployeeSyncService {
  private readonly listeners: EmployeeChangeListener[] = [];

  constructor(
    private readonly config: AppConfig,
    private readonly client: HrClient,
  ) {}

  /** The permissions module registers here (app.ts); listeners run in registration order. */
  addChangeListener(listener: EmployeeChangeListener): void {
    this.listeners.push(listener);
  }

  removeChangeListener(listener: EmployeeChangeListener): void {
    const index = this.listeners.indexOf(listener);
    if (index !== -1) this.listeners.splice(index, 1);
  }

  /** For the scheduler's start-up run: true when no employee has been mirrored yet. */
  async isMirrorEmpty(em: EntityManager): Promise<boolean> {
    const rows = await em.execute<{ found: boolean }[]>('select exists (select 1 from employee_department) as found');
    return rows[0]?.found !== true;
  }

  async sync(orm: MikroORM, logger: Logger, options: EmployeeSyncOptions = {}): Promise<EmployeeSyncResult> {
    const log = logger.child({ component: 'employee-sync' });
    try {
      return await this.run(orm, log, options);
    } catch (error) {
      const failure = this.asSyncFailure(error);
      log.error({ err: error, error: failure.message }, 'employee sync failed; nothing changed');
      throw failure;
    }
  }

  private async run(orm: MikroORM, log: Logger, options: EmployeeSyncOptions): Promise<EmployeeSyncResult> {
    const feeds = await this.readFeeds(log, options.signal);
    const plan = await orm.em.fork().transactional(async (em) => {
      await em.execute(`select pg_advisory_xact_lock(${SYNC_LOCK_KEY})`);
      const current = await em.execute<
        { employee_number: string; username: string; dept_full_level_names: string; dep_id: string | null }[]
      >(
        'select employee_number, username, dept_full_level_names, dep_id from employee_department order by employee_number for update',
      );
      const planned = planReconciliation(
        current.map((row) => ({
          employeeNumber: row.employee_number,
          username: row.username,
          path: row.dept_full_level_names,
          depId: row.dep_id,
        })),
        feeds.employees,
      );
      this.refuseMassRemoval(planned, current.length);
      await this.apply(em, planned);
      if (hasChanges(planned.changes)) {
        for (const listener of this.listeners) await listener.beforeCommit(em, planned.changes);
      }
      return planned;
    });

    const { changes } = plan;
    // Also after a sync that changed nothing: a listener may have owed work left by an earlier one
    // (the permissions module retries pushes owed for removed employees here).
    for (const listener of this.listeners) {
      try {
        await listener.afterCommit(orm.em.fork(), changes);
      } catch (error) {
        // The mirror is committed; pushes are best effort and the next recompute retries them (SPEC §6).
        log.error({ err: error }, 'employee change listener failed after the sync committed');
      }
    }

    const skipped = feeds.skippedUnknownDepartment + feeds.skippedDuplicate;
    const applied = feeds.employees.length - feeds.skippedUnknownDepartment;
    const removed = changes.removed.length;
    const result: EmployeeSyncResult = {
      processed: applied + skipped + removed,
      succeeded: applied + removed,
      failed: skipped,
      changes,
      unchanged: plan.unchanged,
      skipped,
    };
    log.info(
      {
        added: changes.added.length,
        moved: changes.moved.length,
        renamed: changes.renamed.length,
        removed,
        unchanged: plan.unchanged,
        skippedUnknownDepartment: feeds.skippedUnknownDepartment,
        skippedDuplicate: feeds.skippedDuplicate,
      },
      'employee sync finished',
    );
    return result;
  }

  private async readFeeds(log: Logger, signal: AbortSignal | undefined): Promise<Feeds> {
    const hr = this.config.hr;
    if (!hr.enabled) throw syncFailed('employee sync is disabled (HR_SYNC_ENABLED is not true)');
    if (!hr.employeesUrl || !hr.departmentsUrl) throw syncFailed('HR_EMPLOYEES_URL and HR_DEPARTMENTS_URL are not set');
    if (!hr.employeesKey || !hr.departmentsKey) throw syncFailed('HR_EMPLOYEES_KEY and HR_DEPARTMENTS_KEY are not set');

    const [employeesText, departmentsText] = await Promise.all([
      this.client.fetchFeed('employees', hr.employeesUrl, signal),
      this.client.fetchFeed('departments', hr.departmentsUrl, signal),
    ]);
    const employees = parseEmployees(decryptFeed(employeesText, hr.employeesKey, 'employees'));
    const departments = parseDepartments(decryptFeed(departmentsText, hr.departmentsKey, 'departments'));
    if (employees.length === 0) throw syncFailed('the employees feed is empty; refusing to remove every employee');
    if (departments.length === 0) throw syncFailed('the departments feed is empty');

    const hierarchy = buildDepartmentHierarchy(departments);
    for (const problem of hierarchy.problems) {
      log.warn(problem, 'department hierarchy: walk ended early (the path starts at the last department reached)');
    }
    for (const renamed of hierarchy.renamed) {
      log.warn(renamed, 'department name contains "," and was stored with "，" instead');
    }

    const feedEmployees: FeedEmployee[] = [];
    const seen = new Set<string>();
    let skippedUnknownDepartment = 0;
    let skippedDuplicate = 0;
    for (const employee of employees) {
      if (seen.has(employee.badge)) {
        skippedDuplicate++;
        log.warn({ employeeNumber: employee.badge }, 'employee appears twice in the feed; the first record is used');
        continue;
      }
      seen.add(employee.badge);
      const path = employee.depId === null ? undefined : hierarchy.paths.get(employee.depId);
      if (!path) {
        skippedUnknownDepartment++;
        log.warn(
          { employeeNumber: employee.badge, depId: employee.depId },
          'employee has an unknown department; skipped and kept as it is',
        );
        feedEmployees.push({ employeeNumber: employee.badge, skipped: true });
        continue;
      }
      feedEmployees.push({
        employeeNumber: employee.badge,
        skipped: false,
        username: employee.name,
        path: joinDepartmentPath(path),
        depId: employee.depId,
      });
    }
    return { employees: feedEmployees, skippedUnknownDepartment, skippedDuplicate };
  }

  /** **Decision (safety)**: a feed that would remove more than HR_MAX_REMOVAL_RATIO of the known employees is refused. */
  private refuseMassRemoval(plan: ReconciliationPlan, known: number): void {
    const removing = plan.changes.removed.length;
    const ratio = this.config.hr.maxRemovalRatio;
    if (known > 0 && removing > ratio * known) {
      throw syncFailed(
        `the feed would remove ${removing} of ${known} known employees, more than HR_MAX_REMOVAL_RATIO (${ratio}); refusing`,
      );
    }
  }

  private async apply(em: EntityManager, plan: ReconciliationPlan): Promise<void> {
    const recordset = 'jsonb_to_recordset(?::jsonb) as x(employee_number text, username text, path text, dep_id text)';
    if (plan.inserts.length > 0) {
      await em.execute(
        `insert into employee_department (employee_number, username, dept_full_level_names, dep_id)
         select x.employee_number, x.username, x.path, x.dep_id from ${recordset}`,
        [JSON.stringify(plan.inserts)],
      );
    }
    if (plan.updates.length > 0) {
      await em.execute(
        `update employee_department e set username = x.username, dept_full_level_names = x.path,
           dep_id = x.dep_id, update_time = now()
         from ${recordset} where e.employee_number = x.employee_number`,
        [JSON.stringify(plan.updates)],
      );
    }
    if (plan.changes.removed.length > 0) {
      await em.execute(
        'delete from employee_department where employee_number in (select jsonb_array_elements_text(?::jsonb))',
        [JSON.stringify(plan.changes.removed.map((removed) => removed.employeeNumber))],
      );
    }
  }

  private asSyncFailure(error: unknown): DomainError {
    if (isDomainError(error) && error.code === ErrorCode.HR_SYNC_FAILED) return error;
    if (error instanceof HrUnavailableError) return syncFailed(error.message, error);
    if (error instanceof HrPayloadError) return syncFailed(error.message, error);
    if (isDomainError(error)) return syncFailed(error.message, error);
    return syncFailed('unexpected error while reconciling the HR mirror (see the server log)', error);
  }
}

function decryptFeed(served: string, key: string, feed: 'employees' | 'departments'): string {
  try {
    return decryptHrPayload(served, key);
  } catch (error) {
    if (error instanceof HrPayloadError) throw new HrPayloadError(`the ${feed} feed: ${error.message}`);
    throw error;
  }
}
