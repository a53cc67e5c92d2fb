import type { EntityManager } from '../../db/orm.js';
import { idAfterKey, type PageWindow, withKeyset } from '../../graphql/pagination.js';
import type { StoredTargetType } from './permission.enums.js';

/** One permission_audit row to write; `details` becomes the JSON text column. */
export interface AuditEntry {
  operation: string;
  targetType: StoredTargetType | null;
  targetIdentifier: string | null;
  details: Record<string, unknown>;
}

/**
 * Writes the rows in one statement and returns their ids in the order given. The ids are drawn from
 * the table's sequence first, so each entry knows its row without relying on RETURNING order.
 */
export async function insertAudits(em: EntityManager, entries: readonly AuditEntry[], now: Date): Promise<string[]> {
  if (entries.length === 0) return [];
  const drawn = await em.execute<{ id: string }[]>(
    `select nextval(pg_get_serial_sequence('permission_audit', 'id'))::text as id from generate_series(1, ?)`,
    [entries.length],
  );
  const ids = drawn.map((row) => String(row.id));
  const records = entries.map((entry, index) => ({
    id: ids[index],
    operation: entry.operation,
    target_type: entry.targetType,
    target_identifier: entry.targetIdentifier,
    details: JSON.stringify(entry.details),
  }));
  await em.execute(
    `insert into permission_audit (id, operation, target_type, target_identifier, details, create_time)
     select r.id, r.operation, r.target_type, r.target_identifier, r.details, ?
     from jsonb_to_recordset(?::jsonb)
       as r(id bigint, operation text, target_type text, target_identifier text, details text)`,
    [now, JSON.stringify(records)],
  );
  return ids;
}

/**
 * Adds facts learnt after the commit (whether the gateway was notified) to an audit row. This is the
 * only update audits ever get: the row is written with the change, so a crash before the push still
 * leaves it, saying the outcome is unknown.
 */
export async function patchAuditDetails(em: EntityManager, id: string, patch: Record<string, unknown>): Promise<void> {
  await em.execute(
    `update permission_audit set details = (coalesce(details, '{}')::jsonb || ?::jsonb)::text where id = ?`,
    [JSON.stringify(patch), id],
  );
}

export interface AuditRow {
  id: string;
  operation: string;
  targetType: string | null;
  targetIdentifier: string | null;
  details: string | null;
  createdAt: Date;
}

export interface AuditFilter {
  targetIdentifier?: string | null;
  operation?: string | null;
}

/** Newest first, id as the tie-break (ids grow with time). */
export async function listAudits(
  em: EntityManager,
  filter: AuditFilter,
  window: PageWindow,
): Promise<{ items: AuditRow[]; totalCount: number }> {
  const conditions: string[] = [];
  const params: unknown[] = [];
  if (filter.targetIdentifier !== null && filter.targetIdentifier !== undefined) {
    conditions.push('target_identifier = ?');
    params.push(filter.targetIdentifier);
  }
  if (filter.operation !== null && filter.operation !== undefined) {
    conditions.push('operation = ?');
    params.push(filter.operation);
  }
  const where = conditions.length > 0 ? `where ${conditions.join(' and ')}` : '';
  const afterId = idAfterKey(window);
  const page = withKeyset(where, afterId === null ? null : { sql: 'id < ?', params: [afterId] });
  const [rows, counted] = await Promise.all([
    em.execute<
      {
        id: string;
        operation: string;
        target_type: string | null;
        target_identifier: string | null;
        details: string | null;
        create_time: Date;
      }[]
    >(
      `select id, operation, target_type, target_identifier, details, create_time from permission_audit ${page.sql}
       order by id desc limit ? offset ?`,
      [...params, ...page.params, window.fetchLimit, window.offset],
    ),
    em.execute<{ total: string }[]>(`select count(*) as total from permission_audit ${where}`, params),
  ]);
  return {
    items: rows.map((row) => ({
      id: String(row.id),
      operation: row.operation,
      targetType: row.target_type,
      targetIdentifier: row.target_identifier,
      details: row.details,
      createdAt: new Date(row.create_time),
    })),
    totalCount: Number(counted[0]?.total ?? 0),
  };
}
