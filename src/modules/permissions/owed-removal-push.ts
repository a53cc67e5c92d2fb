import type { EntityManager } from '../../db/orm.js';
import type { LastTold } from './effective-rules.js';
import { PermissionKind } from './permission.enums.js';
import { insertAudits } from './permission-audit.store.js';
import type { KindSpec } from './permission-kinds.js';
import { recomputeAudit, removedState } from './permission-recompute.js';
import { saveRemovalPushes } from './removal-push-outbox.js';

/**
 * SPEC §7's rule for what removing an employee owes the gateway, and how that debt is recorded —
 * one place for the two paths that find it: the sync's own delete (PermissionSyncListener), and a
 * push that landed while that delete ran (PermissionPusher).
 */

/** The kinds removal clears: `[]` models and star check `false`. Quota check is left as it is. */
const CLEARED_BY_REMOVAL: ReadonlySet<PermissionKind> = new Set([PermissionKind.MODEL, PermissionKind.STAR_CHECK]);

/**
 * Whether removal owes a push, given what the gateway was last told: "where they had them" — a
 * non-empty list, star check on; i.e. something other than the kind's default, which is what
 * removal tells it — or wherever the gateway may hold something else than it was last told.
 */
export function removalPushOwed(spec: KindSpec<unknown>, told: LastTold<unknown>): boolean {
  if (!CLEARED_BY_REMOVAL.has(spec.kind)) return false;
  if (told.uncertain) return true;
  return told.notified !== null && !spec.equals(told.notified, spec.fallback);
}

export interface RemovalDebt {
  spec: KindSpec<unknown>;
  key: string;
  /**
   * What the gateway was last told, or may hold (removalPushOwed holds for it; `notified` is never
   * null here), and whether it may hold something else.
   */
  told: LastTold<unknown>;
}

/**
 * Writes one permission_removal_push row per debt, in the caller's transaction, each with an audit
 * row recorded like a recompute to the removed state (the pusher gives it the outcome). `note`
 * adds to the audit details (why the debt was found where it was).
 */
export async function recordRemovalPushes(
  em: EntityManager,
  debts: readonly RemovalDebt[],
  now: Date,
  note?: string,
): Promise<void> {
  if (debts.length === 0) return;
  const audits = debts.map((debt) =>
    recomputeAudit(debt.spec, debt.key, {
      cause: { operation: 'employee_removed', targetType: null, targetIdentifier: null },
      actor: null,
      before: null,
      after: removedState(debt.spec),
      changed: true,
      told: debt.told,
      gatewayNotified: null,
      ...(note === undefined ? {} : { note }),
    }),
  );
  const auditIds = await insertAudits(em, audits, now);
  await saveRemovalPushes(
    em,
    debts.map((debt, index) => ({
      spec: debt.spec,
      key: debt.key,
      value: debt.spec.fallback,
      lastNotified: debt.told.notified,
      lastNotifiedUncertain: debt.told.uncertain,
      auditId: auditIds[index]!,
    })),
    now,
  );
}
