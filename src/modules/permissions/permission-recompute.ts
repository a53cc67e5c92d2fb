import type { EntityManager } from '../../db/orm.js';
import {
  departmentsOnPaths,
  type Effective,
  type LastTold,
  NEVER_TOLD,
  needsPush,
  resolveEffective,
  type Subject,
} from './effective-rules.js';
import type { StoredTargetType } from './permission.enums.js';
import { type AuditEntry, insertAudits } from './permission-audit.store.js';
import type { AnyKindSpec, KindSpec } from './permission-kinds.js';
import {
  type EffectiveWrite,
  loadEffective,
  loadEffectiveOwingPush,
  loadSettings,
  type StoredEffective,
  upsertEffective,
} from './permission-store.js';

/** Why a recompute happened: the setting change or sync that caused it, for its audit rows. */
export interface RecomputeCause {
  operation: string;
  targetType: StoredTargetType | null;
  targetIdentifier: string | null;
  actor: string | null;
}

/** A gateway call owed after a commit (PermissionPusher). */
export type PushTask = RecomputePush | RemovalPush;

/** Send the effective value current at push time, if the rules still call for it; the audit row gets the outcome. */
export interface RecomputePush {
  spec: AnyKindSpec;
  key: string;
  auditId: string;
  removal?: undefined;
}

/**
 * Send the pending row of (kind, key) in permission_removal_push (an employee removed by employee
 * sync): its value, its audit row; the row is deleted once the gateway took it.
 */
export interface RemovalPush {
  spec: AnyKindSpec;
  key: string;
  removal: true;
}

/** The cause of the backstop's pushes (owedPushes), in their audit rows. */
export const OWED_PUSH_RETRY = 'owed_push_retry';

/** Subjects per round trip: bounds parameter sizes and memory for very large departments. */
const CHUNK_SIZE = 500;

/**
 * Recomputes one kind for the subjects inside the caller's transaction (which holds the permissions
 * lock): writes the effective values, one audit row per subject, and returns the pushes the rules of
 * SPEC §6 call for. The pushes themselves happen after the commit (PermissionPusher).
 */
export async function recomputeKind<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  subjects: readonly Subject[],
  cause: RecomputeCause,
  now: Date,
): Promise<RecomputePush[]> {
  const unique = [...new Map(subjects.map((subject) => [subject.key, subject])).values()];
  const tasks: RecomputePush[] = [];
  for (let start = 0; start < unique.length; start += CHUNK_SIZE) {
    tasks.push(...(await recomputeChunk(em, spec, unique.slice(start, start + CHUNK_SIZE), cause, now)));
  }
  return tasks;
}

async function recomputeChunk<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  subjects: readonly Subject[],
  cause: RecomputeCause,
  now: Date,
): Promise<RecomputePush[]> {
  const keys = subjects.map((subject) => subject.key);
  const settings = await loadSettings(em, spec, keys, departmentsOnPaths(subjects));
  const stored = await loadEffective(em, spec, keys);

  const writes: EffectiveWrite<V>[] = [];
  const audits: AuditEntry[] = [];
  const pushKeys: (string | null)[] = [];
  for (const subject of subjects) {
    const effective = resolveEffective(subject, settings, (value) => spec.applies(value), spec.fallback);
    const before = stored.get(subject.key) ?? null;
    const changed = before === null || !sameEffective(spec, before, effective);
    if (changed) writes.push({ key: subject.key, ...effective });
    const push = needsPush(effective, before ?? NEVER_TOLD, (a, b) => spec.equals(a, b));
    // A changed value is re-checked after the commit even when the rule says "no push" now: a push
    // of the previous value may still be in flight, and "last told" is only final once it lands.
    const recheck = before !== null && !spec.equals(before.value, effective.value);
    pushKeys.push(push || recheck ? subject.key : null);
    audits.push(
      recomputeAudit(spec, subject.key, {
        cause: { operation: cause.operation, targetType: cause.targetType, targetIdentifier: cause.targetIdentifier },
        actor: cause.actor,
        departmentPath: subject.departmentPath,
        before: before && describe(before),
        after: describe(effective),
        changed,
        told: before ?? NEVER_TOLD,
        // null until the push after the commit reports; false = the rules call for no push.
        gatewayNotified: push || recheck ? null : false,
      }),
    );
  }
  await upsertEffective(em, spec, writes, now);
  const auditIds = await insertAudits(em, audits, now);
  return pushKeys.flatMap((key, index) =>
    key === null ? [] : [{ spec: spec as AnyKindSpec, key, auditId: auditIds[index]! }],
  );
}

/**
 * The backstop for pushes SPEC §6 still owes for one kind — a recompute's push that failed, or one
 * lost between its commit and its push (a crash, a stop): every such record (one statement), each
 * with an audit row like a recompute's, so the pusher (which re-checks the rule under its lock)
 * records the outcome. `skip`: keys whose push is already on its way (not audited twice). A record
 * whose push from a concurrent setting change is still in flight is picked too; the pusher then
 * finds it told and records the retry as skipped.
 */
export async function owedPushes<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  skip: ReadonlySet<string>,
  now: Date,
): Promise<RecomputePush[]> {
  const owed = (await loadEffectiveOwingPush(em, spec)).filter((record) => !skip.has(record.key));
  const tasks: RecomputePush[] = [];
  for (let start = 0; start < owed.length; start += CHUNK_SIZE) {
    const chunk = owed.slice(start, start + CHUNK_SIZE);
    const audits = chunk.map((record) =>
      recomputeAudit(spec, record.key, {
        cause: { operation: OWED_PUSH_RETRY, targetType: null, targetIdentifier: null },
        reason: 'a retry of an owed push: the gateway was not told this value (a failed or lost push)',
        actor: null,
        before: describe(record),
        after: describe(record),
        changed: false,
        told: record,
        gatewayNotified: null,
      }),
    );
    const auditIds = await insertAudits(em, audits, now);
    tasks.push(
      ...chunk.map((record, index) => ({ spec: spec as AnyKindSpec, key: record.key, auditId: auditIds[index]! })),
    );
  }
  return tasks;
}

function sameEffective<V>(spec: KindSpec<V>, before: StoredEffective<V>, after: Effective<V>): boolean {
  return (
    spec.equals(before.value, after.value) &&
    before.source === after.source &&
    before.sourceIdentifier === after.sourceIdentifier &&
    before.settingId === after.settingId
  );
}

function describe<V>(effective: { value: V; source: string; sourceIdentifier: string | null }) {
  return { value: effective.value, source: effective.source, sourceIdentifier: effective.sourceIdentifier };
}

/**
 * The audit row of one employee's recompute of one kind — a setting change's or a sync's, a retry of
 * an owed push, a removal's push — so permissionAudits shows them all with one shape of details.
 * `told` becomes `lastNotified`, plus `lastNotifiedUncertain: true` when the gateway may hold
 * something else. The pusher adds the outcome to it (gatewayNotified, gatewayError, pushedValue…).
 */
export function recomputeAudit(
  spec: KindSpec<unknown> | AnyKindSpec,
  key: string,
  details: {
    cause: { operation: string; targetType: StoredTargetType | null; targetIdentifier: string | null };
    actor: string | null;
    before: unknown;
    after: unknown;
    changed: boolean;
    told: LastTold<unknown>;
    gatewayNotified: boolean | null;
  } & Record<string, unknown>,
): AuditEntry {
  const { told, ...rest } = details;
  const lastTold = told.uncertain
    ? { lastNotified: told.notified, lastNotifiedUncertain: true }
    : { lastNotified: told.notified };
  return {
    operation: spec.recomputeOperation,
    targetType: 'user',
    targetIdentifier: key,
    details: { kind: spec.kind, ...rest, ...lastTold },
  };
}

/** What a removed employee's record is described as: the kind's default, from no setting. */
export function removedState(spec: KindSpec<unknown>) {
  return describe({ value: spec.fallback, source: 'default', sourceIdentifier: null });
}
