import type { EntityManager } from '../../db/orm.js';
import type { PermissionKind } from './permission.enums.js';
import { type AnyKindSpec, type KindSpec, specFor } from './permission-kinds.js';

/**
 * The SQL of `permission_removal_push`: the gateway pushes owed for employees removed by employee
 * sync (SPEC §7), kept in the database so that a failed push — or a process that dies between the
 * sync's commit and the push — is retried after the next sync instead of being forgotten (SPEC §6:
 * the database keeps the intended state). Values are stored in the kind's own stored form
 * (KindSpec.write / read, as in every other permission table: the comma-joined model list, or a
 * boolean) in jsonb columns, which hold either.
 */

export interface OwedRemovalPush<V> {
  spec: KindSpec<V>;
  key: string;
  /** What to tell the gateway. */
  value: V;
  /** What the gateway had last been told before the removal (never null: nothing told, nothing owed). */
  lastNotified: V;
  /** The gateway may hold something other than `lastNotified` (a push failed that may have landed). */
  lastNotifiedUncertain: boolean;
  /** The permission_audit row that records the push's outcome. */
  auditId: string;
}

/** Writes owed pushes in the caller's transaction; a pending row for the same (kind, key) is replaced. */
export async function saveRemovalPushes(
  em: EntityManager,
  rows: readonly OwedRemovalPush<unknown>[],
  now: Date,
): Promise<void> {
  if (rows.length === 0) return;
  const records = rows.map((row) => ({
    kind: row.spec.kind,
    key: row.key,
    value: row.spec.write(row.value),
    last_notified: row.spec.write(row.lastNotified),
    last_notified_uncertain: row.lastNotifiedUncertain,
    audit_id: row.auditId,
  }));
  await em.execute(
    `insert into permission_removal_push
       (kind, employee_key, push_value, last_notified, last_notified_uncertain, audit_id, create_time)
     select r.kind, r.key, r.value, r.last_notified, r.last_notified_uncertain, r.audit_id, ?
     from jsonb_to_recordset(?::jsonb)
       as r(kind text, key text, value jsonb, last_notified jsonb, last_notified_uncertain boolean, audit_id bigint)
     on conflict (kind, employee_key) do update set push_value = excluded.push_value,
       last_notified = excluded.last_notified, last_notified_uncertain = excluded.last_notified_uncertain,
       audit_id = excluded.audit_id, create_time = excluded.create_time`,
    [now, JSON.stringify(records)],
  );
}

export interface DroppedRemovalPush {
  spec: AnyKindSpec;
  key: string;
  lastNotified: unknown;
  lastNotifiedUncertain: boolean;
  auditId: string;
}

/** Deletes the pending rows of these keys (employees HR brought back) and returns them. */
export async function dropRemovalPushes(em: EntityManager, keys: readonly string[]): Promise<DroppedRemovalPush[]> {
  if (keys.length === 0) return [];
  const rows = await em.execute<
    { kind: string; employee_key: string; last_notified: unknown; last_notified_uncertain: boolean; audit_id: string }[]
  >(
    `delete from permission_removal_push where employee_key in (select jsonb_array_elements_text(?::jsonb))
     returning kind, employee_key, last_notified, last_notified_uncertain, audit_id`,
    [JSON.stringify([...new Set(keys)])],
  );
  return rows.map((row) => {
    const spec = specFor(row.kind as PermissionKind);
    return {
      spec,
      key: row.employee_key,
      lastNotified: spec.read(row.last_notified),
      lastNotifiedUncertain: row.last_notified_uncertain,
      auditId: String(row.audit_id),
    };
  });
}

/** Every pending (kind, key), oldest first. */
export async function listRemovalPushes(em: EntityManager): Promise<{ spec: AnyKindSpec; key: string }[]> {
  const rows = await em.execute<{ kind: string; employee_key: string }[]>(
    'select kind, employee_key from permission_removal_push order by create_time, kind, employee_key',
  );
  return rows.map((row) => ({ spec: specFor(row.kind as PermissionKind), key: row.employee_key }));
}

/**
 * The pending row of (kind, key), locked until the caller's transaction ends — so the sync that
 * brings the employee back (and drops the row) waits for a push in flight, or the push finds the
 * row gone. Null when there is none.
 */
export async function lockRemovalPush<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  key: string,
): Promise<{ value: V; auditId: string } | null> {
  const rows = await em.execute<{ push_value: unknown; audit_id: string }[]>(
    'select push_value, audit_id from permission_removal_push where kind = ? and employee_key = ? for update',
    [spec.kind, key],
  );
  const row = rows[0];
  return row ? { value: spec.read(row.push_value), auditId: String(row.audit_id) } : null;
}

/**
 * Sets what the gateway was last told on the pending row of (kind, key), if there is one (a push
 * landed after the sync that removed the employee read it: certain again); false when there is none.
 */
export async function updatePendingLastNotified<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  key: string,
  lastNotified: V,
): Promise<boolean> {
  const rows = await em.execute<{ kind: string }[]>(
    `update permission_removal_push set last_notified = ?::jsonb, last_notified_uncertain = false
     where kind = ? and employee_key = ? returning kind`,
    [JSON.stringify(spec.write(lastNotified)), spec.kind, key],
  );
  return rows.length > 0;
}

export async function deleteRemovalPush(em: EntityManager, spec: { kind: PermissionKind }, key: string): Promise<void> {
  await em.execute('delete from permission_removal_push where kind = ? and employee_key = ?', [spec.kind, key]);
}

/** A removal push failed that may have landed: the gateway may already hold its `[]` / `false`. */
export async function markRemovalPushUncertain(
  em: EntityManager,
  spec: { kind: PermissionKind },
  key: string,
): Promise<void> {
  await em.execute(
    'update permission_removal_push set last_notified_uncertain = true where kind = ? and employee_key = ?',
    [spec.kind, key],
  );
}
