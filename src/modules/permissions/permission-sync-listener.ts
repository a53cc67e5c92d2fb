import type { EntityManager } from '../../db/orm.js';
import type { Logger } from '../../logger.js';
import type { EmployeeChangeListener, EmployeeChanges } from '../employees/employee-change-listener.js';
import { type RemovalDebt, recordRemovalPushes, removalPushOwed } from './owed-removal-push.js';
import type { PermissionService } from './permission.service.js';
import { type AuditEntry, insertAudits, patchAuditDetails } from './permission-audit.store.js';
import { type KindSpec, MODEL_SPEC, QUOTA_CHECK_SPEC, STAR_CHECK_SPEC } from './permission-kinds.js';
import type { PushTask, RecomputeCause } from './permission-recompute.js';
import { deleteEffective, deleteUserSettings, lockPermissions, seedNotified } from './permission-store.js';
import { dropRemovalPushes } from './removal-push-outbox.js';

const SYNC_CAUSE: RecomputeCause = {
  operation: 'employee_sync',
  targetType: null,
  targetIdentifier: null,
  actor: null,
};

/**
 * Employee sync's hook into permissions (SPEC §7):
 * - before the sync commits: moved employees lose their personal model whitelist (switch settings
 *   stay); removed employees lose their personal settings and effective records, and the pushes
 *   owed for them (`[]` models and star-check `false` where the gateway had been told otherwise) are
 *   written to the permission_removal_push outbox; employees HR brings back lose any push still
 *   pending for them (it would clear what their recompute decides), and their new effective records
 *   start from what the gateway was last told;
 * - after the commit (of every sync, changed or not): added, moved and renamed employees are
 *   recomputed and pushed per §6, together with every pending removal push — this sync's and those
 *   a failed call or a crash left behind, which is how they are retried — and every push §6 still
 *   owes for an effective record (a recompute's push that failed or was lost after its commit).
 * Everything owed travels through the database, so a rolled-back sync drops it and a committed one
 * keeps it.
 */
export class PermissionSyncListener implements EmployeeChangeListener {
  constructor(private readonly permissions: PermissionService) {}

  async beforeCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    if (changes.added.length === 0 && changes.moved.length === 0 && changes.removed.length === 0) return;
    await lockPermissions(em);
    const now = this.permissions.clock.now();
    const subjects = this.permissions.subjects;

    await this.dropPushesOfReturning(em, await subjects.keysOfEmployeeNumbers(changes.added), now);

    const movedKeys = await subjects.keysOfEmployeeNumbers(changes.moved);
    const cleared = await deleteUserSettings(em, MODEL_SPEC, movedKeys);
    const clearedAudits: AuditEntry[] = [...cleared].map(([key, models]) => ({
      operation: 'whitelist_cleared',
      targetType: 'user',
      targetIdentifier: key,
      details: { kind: MODEL_SPEC.kind, reason: 'department_change', before: models, after: null, actor: null },
    }));
    await insertAudits(em, clearedAudits, now);

    const removedKeys = await subjects.keysOfEmployeeNumbers(changes.removed.map((entry) => entry.employeeNumber));
    if (removedKeys.length === 0) return;
    const settings = {
      [MODEL_SPEC.kind]: await deleteUserSettings(em, MODEL_SPEC, removedKeys),
      [STAR_CHECK_SPEC.kind]: await deleteUserSettings(em, STAR_CHECK_SPEC, removedKeys),
      [QUOTA_CHECK_SPEC.kind]: await deleteUserSettings(em, QUOTA_CHECK_SPEC, removedKeys),
    };
    const models = await deleteEffective(em, MODEL_SPEC, removedKeys);
    const starCheck = await deleteEffective(em, STAR_CHECK_SPEC, removedKeys);
    await deleteEffective(em, QUOTA_CHECK_SPEC, removedKeys);

    const audits: AuditEntry[] = [];
    const debts: RemovalDebt[] = [];
    for (const key of removedKeys) {
      const toldModels = models.get(key)?.notified ?? null;
      const toldStarCheck = starCheck.get(key)?.notified ?? null;
      audits.push({
        operation: 'employee_removed',
        targetType: 'user',
        targetIdentifier: key,
        details: {
          actor: null,
          removedSettings: Object.fromEntries(
            Object.entries(settings).map(([kind, byKey]) => [kind, byKey.has(key) ? byKey.get(key) : null]),
          ),
          lastNotified: { MODEL: toldModels, STAR_CHECK: toldStarCheck },
        },
      });
      for (const [spec, told] of [
        [MODEL_SPEC, toldModels],
        [STAR_CHECK_SPEC, toldStarCheck],
      ] as const) {
        if (removalPushOwed(spec as KindSpec<unknown>, told)) {
          debts.push({ spec: spec as KindSpec<unknown>, key, lastNotified: told });
        }
      }
    }
    await insertAudits(em, audits, now);
    await recordRemovalPushes(em, debts, now);
  }

  async afterCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    const log = this.permissions.logger;
    const changed = [...new Set([...changes.added, ...changes.moved, ...changes.renamed])];
    // Each step on its own: a recompute that fails must not keep what earlier syncs left owed from
    // being sent. (It committed nothing, so the backstop below has nothing of it to push.)
    const tasks = await attempt(log, 'recompute after employee sync failed', [] as PushTask[], async () => {
      if (changed.length === 0) return [];
      return em.transactional(async (tx) => {
        await lockPermissions(tx);
        const subjects = await this.permissions.subjects.forEmployeeNumbers(tx, changed);
        return this.permissions.recompute(tx, subjects, SYNC_CAUSE);
      });
    });
    const removals = await attempt(log, 'could not list pending removal pushes', [] as PushTask[], () =>
      this.permissions.pendingRemovalPushes(em),
    );
    // The backstop: every push SPEC §6 still owes that no recompute will send — failed, or lost
    // between a commit and its push (a crash, a stop). Queried after this sync's recompute
    // committed, leaving out what it is about to push.
    const retries = await attempt(log, 'could not list owed permission pushes', [] as PushTask[], () =>
      this.permissions.owedPushes(em, tasks),
    );
    const all = [...tasks, ...removals, ...retries];
    if (all.length === 0 && changed.length === 0 && changes.removed.length === 0) return;
    const summary = await this.permissions.push(all);
    log.info(
      {
        recomputed: changed.length,
        removed: changes.removed.length,
        removalPushes: removals.length,
        owedPushRetries: retries.length,
        ...summary,
      },
      'permissions recomputed after employee sync',
    );
  }

  /**
   * Employees HR brought back before the push owed for their removal went out: the push would clear
   * what their recompute decides, so it is dropped — and since the gateway still holds what it was
   * last told before the removal, their new effective record starts from that, so the recompute
   * pushes whatever differs from it (SPEC §6).
   */
  private async dropPushesOfReturning(em: EntityManager, keys: readonly string[], now: Date): Promise<void> {
    for (const dropped of await dropRemovalPushes(em, keys)) {
      await seedNotified(em, dropped.spec as KindSpec<unknown>, dropped.key, dropped.lastNotified, now);
      await patchAuditDetails(em, dropped.auditId, {
        gatewayNotified: false,
        skipped: 'the employee is back in the HR feed; their recompute decides what the gateway is told',
      });
    }
  }
}

/** Runs one step of afterCommit; a failure is logged and stands for `fallback`. */
async function attempt<T>(log: Logger, failure: string, fallback: T, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    log.error({ err: error }, failure);
    return fallback;
  }
}
