import type { EntityManager } from '../../db/orm.js';
import type { EmployeeChangeListener, EmployeeChanges } from '../employees/employee-change-listener.js';
import type { PermissionService } from './permission.service.js';
import { type AuditEntry, insertAudits } from './permission-audit.store.js';
import { MODEL_SPEC, QUOTA_CHECK_SPEC, STAR_CHECK_SPEC } from './permission-kinds.js';
import type { PushTask, RecomputeCause } from './permission-recompute.js';
import { deleteEffective, deleteUserSettings, lockPermissions } from './permission-store.js';

const SYNC_CAUSE: RecomputeCause = {
  operation: 'employee_sync',
  targetType: null,
  targetIdentifier: null,
  actor: null,
};

/**
 * Employee sync's hook into permissions (SPEC §7):
 * - before the sync commits: moved employees lose their personal model whitelist (switch settings
 *   stay); removed employees lose their personal settings and effective records, and what the
 *   gateway had been told about them is remembered;
 * - after the commit: added, moved and renamed employees are recomputed and pushed per §6; removed
 *   ones get `[]` models and star-check `false` where the gateway had been told otherwise.
 * The pushes owed for removed employees travel from one call to the other keyed by the `changes`
 * object itself (the sync passes the same object to both); a rolled-back sync simply drops them.
 */
export class PermissionSyncListener implements EmployeeChangeListener {
  private readonly removalPushes = new WeakMap<EmployeeChanges, PushTask[]>();

  constructor(private readonly permissions: PermissionService) {}

  async beforeCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    if (changes.moved.length === 0 && changes.removed.length === 0) return;
    await lockPermissions(em);
    const now = this.permissions.clock.now();
    const subjects = this.permissions.subjects;

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
    const owed: Omit<PushTask, 'auditId'>[] = [];
    for (const key of removedKeys) {
      // "Where they had them": the gateway was last told a non-empty list / star check on.
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
      if (toldModels !== null && toldModels.length > 0) owed.push({ spec: MODEL_SPEC, key, fixedValue: [] });
      if (toldStarCheck === true) owed.push({ spec: STAR_CHECK_SPEC, key, fixedValue: false });
    }
    // Each owed push is audited like a recompute to the removed state, and its row gets the outcome.
    for (const task of owed) {
      audits.push({
        operation: task.spec.recomputeOperation,
        targetType: 'user',
        targetIdentifier: task.key,
        details: {
          kind: task.spec.kind,
          cause: { operation: 'employee_removed', targetType: null, targetIdentifier: null },
          actor: null,
          before: null,
          after: { value: task.fixedValue, source: 'default', sourceIdentifier: null },
          changed: true,
          gatewayNotified: null,
        },
      });
    }
    const auditIds = await insertAudits(em, audits, now);
    const firstPushAudit = audits.length - owed.length;
    this.removalPushes.set(
      changes,
      owed.map((task, index) => ({ ...task, auditId: auditIds[firstPushAudit + index]! })),
    );
  }

  async afterCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    const changed = [...new Set([...changes.added, ...changes.moved, ...changes.renamed])];
    const removalPushes = this.removalPushes.get(changes) ?? [];
    this.removalPushes.delete(changes);

    let tasks: PushTask[] = [];
    if (changed.length > 0) {
      tasks = await em.transactional(async (tx) => {
        await lockPermissions(tx);
        const subjects = await this.permissions.subjects.forEmployeeNumbers(tx, changed);
        return this.permissions.recompute(tx, subjects, SYNC_CAUSE);
      });
    }
    const summary = await this.permissions.push([...tasks, ...removalPushes]);
    this.permissions.logger.info(
      { recomputed: changed.length, removed: changes.removed.length, ...summary },
      'permissions recomputed after employee sync',
    );
  }
}
