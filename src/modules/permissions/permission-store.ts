import type { EntityManager } from '../../db/orm.js';
import { type LastTold, needsPush, type SettingsIndex, type SettingValue } from './effective-rules.js';
import type { StoredSource, StoredTargetType } from './permission.enums.js';
import type { KindSpec } from './permission-kinds.js';

/**
 * The SQL of the permissions module, shared by the three kinds (table and column names come from
 * the KindSpec, never from input). Lists travel as one JSON text parameter: the driver would splice
 * an array parameter into the SQL as a list.
 */

/** Serialises every change to permission settings and effective records (setting changes, employee sync). */
const PERMISSIONS_LOCK_KEY = 7_301_124_601;

export async function lockPermissions(em: EntityManager): Promise<void> {
  await em.execute(`select pg_advisory_xact_lock(${PERMISSIONS_LOCK_KEY})`);
}

const jsonList = (items: readonly string[]) => JSON.stringify([...new Set(items)]);
const IN_LIST = 'in (select jsonb_array_elements_text(?::jsonb))';

export interface StoredSetting<V> {
  id: string;
  value: V;
  updatedAt: Date;
}

export async function findSetting<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  targetType: StoredTargetType,
  targetIdentifier: string,
): Promise<StoredSetting<V> | null> {
  const rows = await em.execute<{ id: string; value: unknown; update_time: Date }[]>(
    `select id, ${spec.settingValueColumn} as value, update_time from ${spec.settingsTable}
     where target_type = ? and target_identifier = ?`,
    [targetType, targetIdentifier],
  );
  const row = rows[0];
  return row ? { id: String(row.id), value: spec.read(row.value), updatedAt: new Date(row.update_time) } : null;
}

export async function upsertSetting<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  targetType: StoredTargetType,
  targetIdentifier: string,
  value: V,
  now: Date,
): Promise<StoredSetting<V>> {
  const rows = await em.execute<{ id: string; update_time: Date }[]>(
    `insert into ${spec.settingsTable} (target_type, target_identifier, ${spec.settingValueColumn}, create_time, update_time)
     values (?, ?, ?, ?, ?)
     on conflict (target_type, target_identifier)
     do update set ${spec.settingValueColumn} = excluded.${spec.settingValueColumn}, update_time = excluded.update_time
     returning id, update_time`,
    [targetType, targetIdentifier, spec.write(value), now, now],
  );
  return { id: String(rows[0]!.id), value, updatedAt: new Date(rows[0]!.update_time) };
}

/** The user settings of these keys and the department settings of these names. */
export async function loadSettings<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  userKeys: readonly string[],
  departmentNames: readonly string[],
): Promise<SettingsIndex<V>> {
  const rows = await em.execute<{ id: string; target_type: string; target_identifier: string; value: unknown }[]>(
    `select id, target_type, target_identifier, ${spec.settingValueColumn} as value from ${spec.settingsTable}
     where (target_type = 'user' and target_identifier ${IN_LIST})
        or (target_type = 'department' and target_identifier ${IN_LIST})`,
    [jsonList(userKeys), jsonList(departmentNames)],
  );
  const index: SettingsIndex<V> = { users: new Map(), departments: new Map() };
  for (const row of rows) {
    const setting: SettingValue<V> = { id: String(row.id), value: spec.read(row.value) };
    (row.target_type === 'user' ? index.users : index.departments).set(row.target_identifier, setting);
  }
  return index;
}

/** Deletes the user settings of these keys; returns what they held. */
export async function deleteUserSettings<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  keys: readonly string[],
): Promise<Map<string, V>> {
  if (keys.length === 0) return new Map();
  const rows = await em.execute<{ target_identifier: string; value: unknown }[]>(
    `delete from ${spec.settingsTable} where target_type = 'user' and target_identifier ${IN_LIST}
     returning target_identifier, ${spec.settingValueColumn} as value`,
    [jsonList(keys)],
  );
  return new Map(rows.map((row) => [row.target_identifier, spec.read(row.value)]));
}

/** An effective record, with what the gateway was last told about it (LastTold). */
export interface StoredEffective<V> extends LastTold<V> {
  key: string;
  value: V;
  source: StoredSource;
  sourceIdentifier: string | null;
  settingId: string | null;
}

interface EffectiveRow {
  employee_number: string;
  value: unknown;
  source: string;
  source_identifier: string | null;
  setting_id: string | null;
  notified: unknown;
  uncertain: boolean;
}

function effectiveColumns(spec: KindSpec<unknown>): string {
  return `employee_number, ${spec.effectiveValueColumn} as value, source, source_identifier,
          ${spec.settingIdColumn} as setting_id, ${spec.notifiedColumn} as notified, notified_uncertain as uncertain`;
}

function toEffective<V>(spec: KindSpec<V>, row: EffectiveRow): StoredEffective<V> {
  return {
    key: row.employee_number,
    value: spec.read(row.value),
    source: row.source as StoredSource,
    sourceIdentifier: row.source_identifier,
    settingId: row.setting_id === null ? null : String(row.setting_id),
    notified: row.notified === null ? null : spec.read(row.notified),
    uncertain: row.uncertain,
  };
}

export async function loadEffective<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  keys: readonly string[],
): Promise<Map<string, StoredEffective<V>>> {
  if (keys.length === 0) return new Map();
  const rows = await em.execute<EffectiveRow[]>(
    `select ${effectiveColumns(spec as KindSpec<unknown>)} from ${spec.effectiveTable} where employee_number ${IN_LIST}`,
    [jsonList(keys)],
  );
  return new Map(rows.map((row) => [row.employee_number, toEffective(spec, row)]));
}

/**
 * Every effective record whose push SPEC §6 still owes: the value differs from what the gateway was
 * last told, or it was never told and the value comes from a setting, or the gateway may hold
 * something else (needsPush). One statement for the kind;
 * it compares stored forms, so a record whose forms differ but read the same (an adopted row's
 * 'a,,b') is dropped here by the rule itself.
 */
export async function loadEffectiveOwingPush<V>(em: EntityManager, spec: KindSpec<V>): Promise<StoredEffective<V>[]> {
  const rows = await em.execute<EffectiveRow[]>(
    `select ${effectiveColumns(spec as KindSpec<unknown>)} from ${spec.effectiveTable}
     where notified_uncertain
        or case when ${spec.notifiedColumn} is null then source <> 'default'
                else ${spec.effectiveValueColumn} is distinct from ${spec.notifiedColumn} end`,
  );
  return rows.map((row) => toEffective(spec, row)).filter((row) => needsPush(row, row, (a, b) => spec.equals(a, b)));
}

export interface EffectiveWrite<V> {
  key: string;
  value: V;
  source: StoredSource;
  sourceIdentifier: string | null;
  settingId: string | null;
}

/** Inserts or updates effective values; "last told" (`notified_*`) is left as it is. */
export async function upsertEffective<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  rows: readonly EffectiveWrite<V>[],
  now: Date,
): Promise<void> {
  if (rows.length === 0) return;
  const records = rows.map((row) => ({
    key: row.key,
    value: spec.write(row.value),
    source: row.source,
    source_identifier: row.sourceIdentifier,
    setting_id: row.settingId,
  }));
  const column = spec.effectiveValueColumn;
  const settingId = spec.settingIdColumn;
  await em.execute(
    `insert into ${spec.effectiveTable}
       (employee_number, ${column}, ${settingId}, source, source_identifier, create_time, update_time)
     select r.key, r.value, r.setting_id, r.source, r.source_identifier, ?, ?
     from jsonb_to_recordset(?::jsonb)
       as r(key text, value ${spec.sqlType}, setting_id bigint, source text, source_identifier text)
     on conflict (employee_number) do update set
       ${column} = excluded.${column}, ${settingId} = excluded.${settingId}, source = excluded.source,
       source_identifier = excluded.source_identifier, update_time = excluded.update_time`,
    [now, now, JSON.stringify(records)],
  );
}

/** Records what the gateway has just been told (certain again); false when the effective record is gone. */
export async function markNotified<V>(em: EntityManager, spec: KindSpec<V>, key: string, value: V): Promise<boolean> {
  const rows = await em.execute<{ employee_number: string }[]>(
    `update ${spec.effectiveTable} set ${spec.notifiedColumn} = ?, notified_uncertain = false
     where employee_number = ? returning employee_number`,
    [spec.write(value), key],
  );
  return rows.length > 0;
}

/** A push failed that may have landed: "last told" stays (SPEC §6), but the gateway may hold something else. */
export async function markNotifiedUncertain(em: EntityManager, spec: KindSpec<unknown>, key: string): Promise<void> {
  await em.execute(`update ${spec.effectiveTable} set notified_uncertain = true where employee_number = ?`, [key]);
}

/**
 * Sets "last told" on an employee's effective record, creating a default one (the recompute that
 * follows writes the real value) when there is none: for an employee HR brought back before the
 * push owed for their removal went out, the gateway still holds what it was last told before it —
 * unless an attempt of that push may have landed (`uncertain`).
 */
export async function seedNotified<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  key: string,
  told: { notified: V; uncertain: boolean },
  now: Date,
): Promise<void> {
  await em.execute(
    `insert into ${spec.effectiveTable}
       (employee_number, ${spec.notifiedColumn}, notified_uncertain, create_time, update_time)
     values (?, ?, ?, ?, ?)
     on conflict (employee_number) do update set ${spec.notifiedColumn} = excluded.${spec.notifiedColumn},
       notified_uncertain = excluded.notified_uncertain`,
    [key, spec.write(told.notified), told.uncertain, now, now],
  );
}

/** Deletes the effective records of these keys; returns them (with what the gateway was last told). */
export async function deleteEffective<V>(
  em: EntityManager,
  spec: KindSpec<V>,
  keys: readonly string[],
): Promise<Map<string, StoredEffective<V>>> {
  if (keys.length === 0) return new Map();
  const rows = await em.execute<EffectiveRow[]>(
    `delete from ${spec.effectiveTable} where employee_number ${IN_LIST}
     returning ${effectiveColumns(spec as KindSpec<unknown>)}`,
    [jsonList(keys)],
  );
  return new Map(rows.map((row) => [row.employee_number, toEffective(spec, row)]));
}
