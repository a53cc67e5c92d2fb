import type { EntityManager } from '../../db/orm.js';
import type { StoredTargetType } from './permission.enums.js';
import { insertAudits } from './permission-audit.store.js';
import type { KindSpec } from './permission-kinds.js';
import { type RecomputeCause, type RecomputePush, recomputeKind } from './permission-recompute.js';
import { findSetting, type StoredSetting, upsertSetting } from './permission-store.js';
import type { PermissionSubjects } from './permission-subjects.js';

export interface SettingChange<V> {
  spec: KindSpec<V>;
  targetType: StoredTargetType;
  /** The employee key or the department name. */
  targetIdentifier: string;
  /** The value to store, given the stored one (a whitelist action needs it). */
  nextValue: (current: StoredSetting<V> | null) => V;
  /** Who changed it, for the audit and the recompute's cause. */
  actor: string;
  /** Extra details of the setting's audit row (e.g. the whitelist action). */
  auditDetails?: Record<string, unknown>;
  now: Date;
}

export interface AppliedSettingChange<V> {
  /** The stored setting after the change (unchanged: as it was, null if there was none). */
  setting: StoredSetting<V> | null;
  /** The setting's audit row; null when nothing changed. */
  auditId: string | null;
  /** The pushes the recompute owes the gateway (to hand to the pusher after the commit). */
  tasks: RecomputePush[];
}

/**
 * One setting change inside the caller's transaction, which already holds the permissions lock
 * (lockPermissions): compare with the stored value (the same value → nothing at all: no audit, no
 * recompute), store it, audit it, and recompute every employee it affects. Shared by the API
 * (PermissionService) and the demo seed, so both follow SPEC §6's rules the same way.
 */
export async function applySettingChange<V>(
  tx: EntityManager,
  subjects: PermissionSubjects,
  change: SettingChange<V>,
): Promise<AppliedSettingChange<V>> {
  const { spec, targetType, targetIdentifier, actor, now } = change;
  const current = await findSetting(tx, spec, targetType, targetIdentifier);
  const next = change.nextValue(current);
  // No row yet counts as "not configured": an empty whitelist is the value it already has.
  const unchanged = current ? spec.equals(current.value, next) : !spec.applies(next);
  if (unchanged) return { setting: current, auditId: null, tasks: [] };

  const setting = await upsertSetting(tx, spec, targetType, targetIdentifier, next, now);
  const affected =
    targetType === 'user'
      ? [await subjects.forKey(tx, targetIdentifier)]
      : await subjects.forDepartment(tx, targetIdentifier);
  const [auditId] = await insertAudits(
    tx,
    [
      {
        operation: spec.setOperation,
        targetType,
        targetIdentifier,
        details: {
          kind: spec.kind,
          ...change.auditDetails,
          actor,
          before: current?.value ?? null,
          after: next,
          employeesRecomputed: affected.length,
          gatewayNotified: null,
        },
      },
    ],
    now,
  );
  const cause: RecomputeCause = { operation: spec.setOperation, targetType, targetIdentifier, actor };
  const tasks = await recomputeKind(tx, spec, affected, cause, now);
  return { setting, auditId: auditId!, tasks };
}
