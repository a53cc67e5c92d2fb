import type { EntityManager } from '../../db/orm.js';
import type { Logger } from '../../logger.js';
import type { EmployeeChangeListener, EmployeeChanges } from '../employees/employee-change-listener.js';
import { type RemovalDebt, recordRemovalPushes, removalPushOwed } from './owed-removal-push.js';
import type { PermissionService } from './permission.service.js';
import { type AuditEntry, insertAudits, patchAuditDetails } from './permission-audit.store.js';
import { ALL_SPECS, type AnyKindSpec, type KindSpec, MODEL_SPEC, STAR_CHECK_SPEC } from './permission-kinds.js';
import type { PushTask, RecomputeCause } from './permission-recompute.js';
import {
  deleteEffective,
  deleteUserSettings,
  lockPermissions,
  type StoredEffective,
  seedNotified,
} from './permission-store.js';
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
 *   then added, moved and renamed employees are recomputed (same transaction);
 * - after the commit (of every sync, changed or not): the recompute's pushes are sent per §6,
 *   together with every pending removal push — this sync's and those
 *   a failed call or a crash left behind, which is how they are retried — and every push §6 still
 *   owes for an effective record (a recompute's push that failed or was lost after its commit).
 * What is owed lives in the database (effective records against what the gateway was last told, and
 * the outbox), so a rolled-back sync drops it, a committed one keeps it, and the next sync's backstop
 * sends what a crash after a commit lost.
 */
export class PermissionSyncListener implements EmployeeChangeListener {
  /**
   * The pushes of the recompute made in beforeCommit, handed to afterCommit by the `changes` object
   * (the sync passes the same one to both); a rolled-back sync never reaches afterCommit.
   */
  private readonly recomputePushes = new WeakMap<EmployeeChanges, PushTask[]>();

  constructor(private readonly permissions: PermissionService) {}

  async beforeCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
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

    await this.removeEmployees(em, changes, now);

    // Recomputed in the sync's own transaction: the mirror and the effective records commit together,
    // so a failing recompute fails the sync (nothing changed; the next sync does it all) instead of
    // leaving employees the mirror already has with stale effective records. The pushes go after the
    // commit; if they are lost (a crash), the next sync's backstop finds them owed.
    const changed = [...new Set([...changes.added, ...changes.moved, ...changes.renamed])];
    if (changed.length > 0) {
      const recomputed = await this.permissions.subjects.forEmployeeNumbers(em, changed);
      this.recomputePushes.set(changes, await this.permissions.recompute(em, recomputed, SYNC_CAUSE));
    }
  }

  /** Removed employees: settings and effective records deleted, audited, and the pushes they are owed recorded. */
  private async removeEmployees(em: EntityManager, changes: EmployeeChanges, now: Date): Promise<void> {
    const subjects = this.permissions.subjects;
    const removedKeys = await subjects.keysOfEmployeeNumbers(changes.removed.map((entry) => entry.employeeNumber));
    if (removedKeys.length === 0) return;
    const settings = new Map<AnyKindSpec, Map<string, unknown>>();
    const effective = new Map<AnyKindSpec, Map<string, StoredEffective<unknown>>>();
    for (const spec of ALL_SPECS) {
      settings.set(spec, await deleteUserSettings(em, spec as KindSpec<unknown>, removedKeys));
      effective.set(spec, await deleteEffective(em, spec as KindSpec<unknown>, removedKeys));
    }

    const audits: AuditEntry[] = [];
    const debts: RemovalDebt[] = [];
    for (const key of removedKeys) {
      audits.push({
        operation: 'employee_removed',
        targetType: 'user',
        targetIdentifier: key,
        details: {
          actor: null,
          removedSettings: Object.fromEntries(
            ALL_SPECS.map((spec) => [spec.kind, settings.get(spec)!.has(key) ? settings.get(spec)!.get(key) : null]),
          ),
          lastNotified: {
            MODEL: effective.get(MODEL_SPEC)!.get(key)?.notified ?? null,
            STAR_CHECK: effective.get(STAR_CHECK_SPEC)!.get(key)?.notified ?? null,
          },
        },
      });
      for (const spec of ALL_SPECS) {
        const kind = spec as KindSpec<unknown>;
        const deleted = effective.get(spec)!.get(key);
        if (deleted === undefined) continue;
        // removalPushOwed knows which kinds removal clears. "Where they had them": what the gateway was
        // last told, or wherever it may hold something else (a push failed that may have landed) —
        // or else the value it was meant to hold, as a push that failed ambiguously (a timeout) whose
        // outcome was never recorded (the process stopped) may have landed too. A `[]` / `false` it did
        // not need is harmless; a permission left behind is not.
        const meant = { notified: deleted.value, uncertain: false };
        if (removalPushOwed(kind, deleted)) {
          debts.push({
            spec: kind,
            key,
            told: { notified: deleted.notified ?? deleted.value, uncertain: deleted.uncertain },
          });
        } else if (removalPushOwed(kind, meant)) {
          debts.push({ spec: kind, key, told: meant });
        }
      }
    }
    await insertAudits(em, audits, now);
    await recordRemovalPushes(em, debts, now);
  }

  async afterCommit(em: EntityManager, changes: EmployeeChanges): Promise<void> {
    const log = this.permissions.logger;
    const tasks = this.recomputePushes.get(changes) ?? [];
    this.recomputePushes.delete(changes);
    const recomputed = changes.added.length + changes.moved.length + changes.renamed.length;
    // Each step on its own: one that fails must not keep the others' pushes from being sent.
    const removals = await attempt(log, 'could not list pending removal pushes', [] as PushTask[], () =>
      this.permissions.pendingRemovalPushes(em),
    );
    // The backstop: every push SPEC §6 still owes that no recompute will send — failed, or lost
    // between a commit and its push (a crash, a stop). Queried after this sync's recompute
    // committed, leaving out what it is about to push.
    const retries = await attempt(log, 'could not list owed permission pushes', [] as PushTask[], () =>
      this.permissions.owedPushes(em, tasks),
    );
    // Retries in a new order each sync, so records the gateway keeps refusing cannot always come first.
    const all = [...tasks, ...removals, ...shuffled(retries)];
    if (all.length === 0 && recomputed === 0 && changes.removed.length === 0) return;
    const summary = await this.permissions.push(all);
    log.info(
      {
        recomputed,
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
   * pushes whatever differs from it (SPEC §6); or, if an attempt of the dropped push may have landed,
   * whatever it is.
   */
  private async dropPushesOfReturning(em: EntityManager, keys: readonly string[], now: Date): Promise<void> {
    for (const dropped of await dropRemovalPushes(em, keys)) {
      await seedNotified(
        em,
        dropped.spec as KindSpec<unknown>,
        dropped.key,
        { notified: dropped.lastNotified, uncertain: dropped.lastNotifiedUncertain },
        now,
      );
      await patchAuditDetails(em, dropped.auditId, {
        gatewayNotified: false,
        skipped: 'the employee is back in the HR feed; their recompute decides what the gateway is told',
      });
    }
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(Math.random() * (index + 1));
    [copy[index], copy[other]] = [copy[other]!, copy[index]!];
  }
  return copy;
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
