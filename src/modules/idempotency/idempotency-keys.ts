import { createHash } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Sql } from '../../db/driver-transaction.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';

/**
 * Idempotency keys (`idempotencyKey` on transferOut, deductQuota, runStrategy, triggerScan).
 *
 * A key belongs to one operation and one caller (the token's user): two users may pick the same key.
 * The first call with a key does its work and, in the same transaction, stores the key, a hash of its
 * arguments and its answer. A later call with the key and the same arguments gets that answer back
 * and does nothing; with other arguments it is refused with CONFLICT. Because the key row is written
 * inside the work's transaction, a refused or failed call leaves no key behind (it may be retried
 * with the same key), and two racing calls serialise on the primary key: the second waits for the
 * first to commit and then reads its answer. Keys are kept `retentionHours`, then forgotten.
 */

export type IdempotentOperation = 'transferOut' | 'deductQuota' | 'runStrategy' | 'triggerScan';

/** JSON the key remembers as the first call's answer. */
export type StoredAnswer = Record<string, unknown>;

export interface IdempotentCall {
  operation: IdempotentOperation;
  /** The token's user: keys of different callers never meet. */
  principal: string;
  key: string;
  /** The arguments that must be the same for a replay, already normalised (amounts in cents, ISO dates). */
  request: unknown;
}

/** What a claim found: nothing (go ahead and do the work), or the first call's answer. */
export type ClaimOutcome = { claimed: true } | { claimed: false; answer: StoredAnswer };

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** Reads the optional argument: undefined when absent, else a key of 1–255 visible ASCII characters. */
export function readIdempotencyKey(raw: string | null | undefined): string | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw badInput('idempotencyKey must be 1 to 255 visible ASCII characters (a UUID is a good choice)', {
      argument: 'idempotencyKey',
    });
  }
  return raw;
}

interface KeyRow {
  request_hash: string;
  result: StoredAnswer | string | null;
  expire_time: Date | string;
}

export class IdempotencyKeys {
  private readonly retentionMs: number;

  constructor(
    private readonly clock: Clock,
    retentionHours: number,
  ) {
    this.retentionMs = retentionHours * 3_600_000;
  }

  /**
   * The fast path before any work: the stored answer when the key was used with these arguments
   * (CONFLICT with others), undefined when the key is unknown or expired. Reads only committed rows.
   */
  async lookup(sql: Sql, call: IdempotentCall): Promise<StoredAnswer | undefined> {
    const rows = await sql.execute<KeyRow>(
      `select request_hash, result, expire_time from idempotency_key
        where operation = ? and principal = ? and key = ? and expire_time > ?`,
      [call.operation, call.principal, call.key, this.clock.now()],
    );
    const row = rows[0];
    return row ? this.answerOf(row, call) : undefined;
  }

  /**
   * Inside the work's transaction, before the work: inserts the key. When a committed, unexpired key
   * is there already (or one commits while we wait on the index), returns its answer instead, or
   * refuses other arguments with CONFLICT. An expired key is taken over.
   */
  async claim(transaction: Sql, call: IdempotentCall): Promise<ClaimOutcome> {
    const now = this.clock.now();
    const inserted = await transaction.execute<{ key: string }>(
      `insert into idempotency_key (operation, principal, key, request_hash, result, create_time, expire_time)
       values (?, ?, ?, ?, null, ?, ?)
       on conflict (operation, principal, key) do update
         set request_hash = excluded.request_hash, result = null,
             create_time = excluded.create_time, expire_time = excluded.expire_time
         where idempotency_key.expire_time <= excluded.create_time
       returning key`,
      [call.operation, call.principal, call.key, requestHash(call), now, new Date(now.getTime() + this.retentionMs)],
    );
    if (inserted.length > 0) return { claimed: true };
    // Read committed: this statement sees the row that made the insert stand down.
    const rows = await transaction.execute<KeyRow>(
      'select request_hash, result, expire_time from idempotency_key where operation = ? and principal = ? and key = ?',
      [call.operation, call.principal, call.key],
    );
    const row = rows[0];
    if (!row) throw inProgress(call);
    return { claimed: false, answer: this.answerOf(row, call) };
  }

  /** Inside the same transaction, after the work: the answer later calls with the key get. */
  async remember(transaction: Sql, call: IdempotentCall, answer: StoredAnswer): Promise<void> {
    await transaction.execute(
      'update idempotency_key set result = ?::jsonb where operation = ? and principal = ? and key = ?',
      [JSON.stringify(answer), call.operation, call.principal, call.key],
    );
  }

  /** Forgets keys past their retention; returns how many. Any instance may run it (an idempotent delete). */
  async purgeExpired(sql: Sql): Promise<number> {
    const deleted = await sql.execute<{ key: string }>(
      'delete from idempotency_key where expire_time <= ? returning key',
      [this.clock.now()],
    );
    return deleted.length;
  }

  private answerOf(row: KeyRow, call: IdempotentCall): StoredAnswer {
    if (row.request_hash !== requestHash(call)) {
      throw new DomainError(
        ErrorCode.CONFLICT,
        `idempotencyKey ${JSON.stringify(call.key)} was already used for ${call.operation} with other arguments`,
        { argument: 'idempotencyKey' },
      );
    }
    if (row.result === null) throw inProgress(call);
    return typeof row.result === 'string' ? (JSON.parse(row.result) as StoredAnswer) : row.result;
  }
}

function inProgress(call: IdempotentCall): DomainError {
  return new DomainError(
    ErrorCode.CONFLICT,
    `a ${call.operation} with idempotencyKey ${JSON.stringify(call.key)} is still in progress; try again`,
    { argument: 'idempotencyKey' },
  );
}

/** sha256 of the arguments as canonical JSON (object keys sorted), so key order never matters. */
function requestHash(call: IdempotentCall): string {
  return createHash('sha256').update(canonicalJson(call.request)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, item]) => `${JSON.stringify(name)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
