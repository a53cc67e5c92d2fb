import type { Clock } from '../../clock.js';
import { inDriverTransaction, type Sql } from '../../db/driver-transaction.js';
import type { EntityManager } from '../../db/orm.js';
import { isSqlState, SqlState } from '../../db/sql-state.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToAmount, centsToDecimalString, decimalToCents } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { isGatewayError } from '../gateway/gateway.errors.js';

/**
 * The ledger core (SPEC §5, §8): every change to a user's batches goes through `withUserLedger`,
 * which serialises the user's changes across instances and keeps the invariant
 * gateway total = Σ VALID batches by writing the total absolutely, last, inside the transaction.
 * Grants, vouchers, deductions and expiry are built on these few operations.
 */

export interface Batch {
  id: string;
  userId: string;
  amount: Cents;
  expiryDate: Date;
  status: 'VALID' | 'EXPIRED';
  createdAt: Date;
}

export interface AuditItemRecord {
  amount: Cents;
  expiryDate: Date;
  status: 'SUCCESS' | 'FAILED' | 'EXPIRED';
  failureReason?: string;
  originalQuota?: Cents;
  newQuota?: Cents;
}

export type AuditOperation = 'RECHARGE' | 'TRANSFER_IN' | 'TRANSFER_OUT' | 'EXPIRE' | 'DEDUCT';

export interface AuditEntry {
  operation: AuditOperation;
  /** Signed: + RECHARGE/TRANSFER_IN, − TRANSFER_OUT/EXPIRE/DEDUCT. */
  amount: Cents;
  expiryDate: Date;
  items: AuditItemRecord[];
  voucherCode?: string;
  relatedUser?: string;
  strategyId?: string;
  strategyName?: string;
  reason?: string;
  reference?: string;
  actor?: string;
}

/** One user's ledger inside one transaction that holds the user's lock. */
export interface UserLedger {
  /**
   * This transaction's statements, for what is written with the change (idempotency keys, voucher
   * redemptions, strategy executions) — not for batches: those change only through the methods below,
   * which keep the transaction's Σ VALID.
   */
  readonly sql: Sql;
  readonly userId: string;
  /** VALID batches, expiry ascending, id ascending (row-locked). */
  validBatches(): Promise<Batch[]>;
  /** Adds to the user's VALID batch with this expiry, creating it if there is none. */
  credit(expiryDate: Date, amount: Cents): Promise<Batch>;
  /** Reduces a VALID batch, deleting it at 0; returns what is left. Never below 0. */
  debit(batchId: string, amount: Cents): Promise<Cents>;
  /** Marks a VALID batch EXPIRED (its amount stays as it was, for the record). */
  expire(batchId: string): Promise<void>;
  /** Writes the audit row of this change. */
  audit(entry: AuditEntry): Promise<WrittenAudit>;
  /**
   * Writes a TRANSFER_OUT audit unless this user already has one with the same voucher code created
   * at or after `issuedSince` (then null, nothing written): the voucher's uniqueness check and its
   * audit in one round trip.
   */
  auditNewVoucher(entry: AuditEntry, issuedSince: Date): Promise<WrittenAudit | null>;
  /** Σ VALID, in cents: known from this transaction's reads and changes, else read. */
  validTotal(): Promise<Cents>;
  /** gateway.setTotal(userId, Σ VALID): absolute, retried. Call it last, inside the transaction. */
  pushTotal(): Promise<Cents>;
}

/** An audit row as written. Mapping it to an entity costs CPU; only callers that answer with it do. */
export interface WrittenAudit {
  id: string;
  /** The row as PostgreSQL returned it (for `em.map(QuotaAuditRow, row)`). */
  row: Record<string, unknown>;
}

/**
 * Told about every ledger change once its transaction has committed (a rolled-back change is never
 * reported): one call per audit row, with the audit's signed amount. The metrics hook; must not throw.
 */
export interface LedgerObserver {
  onLedgerChange(operation: AuditOperation, amount: Cents): void;
}

/** Operations that add quota (≥ 0; a TRANSFER_IN of a fully expired voucher is 0); the others take (≤ 0). */
const POSITIVE_OPERATIONS: ReadonlySet<AuditOperation> = new Set(['RECHARGE', 'TRANSFER_IN']);

const BATCH_COLUMNS = 'id, user_id, amount, expiry_date, status, create_time';

/** The advisory lock of a user's ledger is on hashtextextended(this prefix + user id, 0). */
const LEDGER_LOCK_PREFIX = 'quota-ledger:';
const ledgerLockKey = (userId: string): string => `${LEDGER_LOCK_PREFIX}${userId}`;

export class Ledger {
  constructor(
    private readonly gateway: GatewayClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly observer?: LedgerObserver,
  ) {}

  /**
   * Runs `work` in a transaction that first takes a transaction-scoped advisory lock on the user
   * (`pg_advisory_xact_lock(hashtextextended('quota-ledger:' || userId, 0))`). Batches may not exist
   * yet, so row locks alone could not order a user's first two grants; the lock serialises every
   * change of one user's ledger across instances, and so the gateway total written inside is always
   * the latest Σ. A thrown error rolls everything back.
   *
   * The transaction runs on a connection of `em`'s pool with its statements sent straight to the
   * driver (inDriverTransaction: the ORM's per-statement cost was most of a transfer's database time);
   * `em` only lends its connection pool. So it cannot join a transaction `em` is already in: that is
   * refused rather than silently run on a second connection.
   */
  async withUserLedger<T>(em: EntityManager, userId: string, work: (ledger: UserLedger) => Promise<T>): Promise<T> {
    if (typeof userId !== 'string' || userId === '') throw new Error('withUserLedger needs a user id');
    if (em.isInTransaction()) throw new Error('withUserLedger starts its own transaction; call it outside one');
    const attempt: { ledger?: TransactionLedger } = {};
    try {
      const result = await this.inLockedTransaction(em, userId, work, attempt);
      if (attempt.ledger) this.reportCommitted(attempt.ledger.audited);
      return result;
    } catch (error) {
      if (attempt.ledger?.gatewayMayBeAhead) await this.restoreCommittedTotal(em, userId, error);
      throw error;
    }
  }

  /**
   * For set-based jobs that change many users' ledgers in one transaction (monthly expiry): takes the
   * same lock as withUserLedger for every user — in sorted order, so two such transactions cannot
   * deadlock — runs `work`, and once the transaction has committed reports the audits `work` says it
   * wrote. Reading and writing batches, the audits and the gateway (repair after a rollback included)
   * are the caller's.
   */
  async withUsersLocked<T>(
    em: EntityManager,
    userIds: readonly string[],
    work: (transaction: EntityManager) => Promise<{ result: T; audited: Pick<AuditEntry, 'operation' | 'amount'>[] }>,
  ): Promise<T> {
    const sorted = [...new Set(userIds)].sort();
    const { result, audited } = await em.transactional(async (transaction) => {
      // jsonb_array_elements_text yields the array in order, and each lock is taken as its row is read.
      await transaction.execute(
        `select count(pg_advisory_xact_lock(hashtextextended(? || id, 0)))::int as locked
           from jsonb_array_elements_text(?::jsonb) as id`,
        [LEDGER_LOCK_PREFIX, JSON.stringify(sorted)],
      );
      return work(transaction);
    });
    this.reportCommitted(audited);
    return result;
  }

  /** One transaction holding the user's lock; `attempt.ledger` is set so the caller can see what it did. */
  private inLockedTransaction<T>(
    em: EntityManager,
    userId: string,
    work: (ledger: UserLedger) => Promise<T>,
    attempt: { ledger?: TransactionLedger },
  ): Promise<T> {
    return inDriverTransaction(
      em,
      async (sql) => {
        attempt.ledger = new TransactionLedger(sql, userId, this.gateway, this.clock);
        return work(attempt.ledger);
      },
      { advisoryLockKey: ledgerLockKey(userId) },
    );
  }

  private reportCommitted(changes: readonly Pick<AuditEntry, 'operation' | 'amount'>[]): void {
    if (!this.observer) return;
    for (const change of changes) {
      try {
        this.observer.onLedgerChange(change.operation, change.amount);
      } catch {
        // An observer cannot undo a committed change; it only loses its own count.
      }
    }
  }

  /**
   * The gateway was told a total the database then did not commit (the work failed after the push,
   * or the commit itself failed). Tell it the committed Σ again; if that fails too, quota sync
   * (SYNC_QUOTAS) repairs it later. One attempt only: going through withUserLedger again would
   * repair the repair, over and over, while the gateway keeps failing ambiguously. Also for the
   * set-based jobs (strategy chunk grants, monthly expiry) whose own transaction failed after pushes.
   */
  async restoreCommittedTotal(em: EntityManager, userId: string, cause: unknown): Promise<void> {
    try {
      await this.inLockedTransaction(em, userId, (ledger) => ledger.pushTotal(), {});
      this.logger.warn(
        { userId, err: cause },
        'ledger change rolled back after the gateway total was set; total restored',
      );
    } catch (error) {
      this.logger.error(
        { userId, err: error, cause },
        'ledger change rolled back after the gateway total was set, and restoring it failed: run SYNC_QUOTAS',
      );
    }
  }
}

class TransactionLedger implements UserLedger {
  /** True once a total was (or may have been) written that a rollback would contradict. */
  gatewayMayBeAhead = false;
  /** The audit rows written in this transaction, reported to the observer after the commit. */
  readonly audited: Pick<AuditEntry, 'operation' | 'amount'>[] = [];
  /**
   * Σ VALID as of the last statement, when this transaction knows it: from the locked batches it read,
   * or from a credit (whose statement sums the others), kept up to date by debit and expire. Saves the
   * Σ query before the gateway write — a round trip in every ledger transaction. Sound because every
   * change of this user's batches holds the user's lock (here, or withUsersLocked) and, in this
   * transaction, goes through these methods (UserLedger.sql is not for batches).
   */
  private knownTotal: Cents | null = null;

  constructor(
    readonly sql: Sql,
    readonly userId: string,
    private readonly gateway: GatewayClient,
    private readonly clock: Clock,
  ) {}

  async validBatches(): Promise<Batch[]> {
    const batches = await readValidBatches(this.sql, this.userId, { forUpdate: true });
    this.knownTotal = batches.reduce((sum, batch) => sum + batch.amount, 0);
    return batches;
  }

  async credit(expiryDate: Date, amount: Cents): Promise<Batch> {
    assertPositiveCents(amount, 'credit');
    const expiry = toWholeSecond(expiryDate);
    const now = this.clock.now();
    try {
      // The Σ of the user's other VALID batches is read in the same statement (its snapshot is from
      // before the upsert, hence `id <>`): with the lock held, that plus this batch is the new Σ VALID.
      const rows = await this.sql.execute<BatchRecord & { valid_total: string }>(
        `with credited as (
           insert into quota (user_id, amount, expiry_date, status, create_time, update_time)
           values (?, ?, ?, 'VALID', ?, ?)
           on conflict (user_id, expiry_date) where status = 'VALID'
           do update set amount = quota.amount + excluded.amount, update_time = excluded.update_time
           returning ${BATCH_COLUMNS}
         )
         select credited.*,
                ((select coalesce(sum(other.amount), 0) from quota other
                   where other.user_id = credited.user_id and other.status = 'VALID' and other.id <> credited.id)
                 + credited.amount)::text as valid_total
           from credited`,
        [this.userId, centsToDecimalString(amount), expiry, now, now],
      );
      this.knownTotal = decimalToCents(rows[0]!.valid_total);
      return toBatch(rows[0]!);
    } catch (error) {
      if (isSqlState(error, SqlState.numericValueOutOfRange)) {
        throw badInput(`the batch expiring ${expiry.toISOString()} cannot hold ${centsToAmount(amount)} more`);
      }
      throw error;
    }
  }

  async debit(batchId: string, amount: Cents): Promise<Cents> {
    assertPositiveCents(amount, 'debit');
    const rows = await this.sql.execute<{ amount: string }>(
      `update quota set amount = amount - ?, update_time = ?
       where id = ? and user_id = ? and status = 'VALID' and amount >= ?
       returning amount`,
      [centsToDecimalString(amount), this.clock.now(), batchId, this.userId, centsToDecimalString(amount)],
    );
    if (rows.length === 0) {
      const exists = await this.sql.execute(`select 1 from quota where id = ? and user_id = ? and status = 'VALID'`, [
        batchId,
        this.userId,
      ]);
      if (exists.length === 0) throw new DomainError(ErrorCode.QUOTA_NOT_FOUND, `no valid batch ${batchId}`);
      throw new DomainError(ErrorCode.INSUFFICIENT_QUOTA, `batch ${batchId} holds less than ${centsToAmount(amount)}`);
    }
    const left = decimalToCents(rows[0]!.amount);
    if (this.knownTotal !== null) this.knownTotal -= amount;
    // An empty batch is removed, so a later grant with that expiry starts a fresh row (old system's rule).
    if (left === 0) await this.sql.execute('delete from quota where id = ?', [batchId]);
    return left;
  }

  async expire(batchId: string): Promise<void> {
    const rows = await this.sql.execute<{ amount: string }>(
      `update quota set status = 'EXPIRED', update_time = ? where id = ? and user_id = ? and status = 'VALID' returning amount`,
      [this.clock.now(), batchId, this.userId],
    );
    if (rows.length === 0) throw new DomainError(ErrorCode.QUOTA_NOT_FOUND, `no valid batch ${batchId}`);
    if (this.knownTotal !== null) this.knownTotal -= decimalToCents(rows[0]!.amount);
  }

  async audit(entry: AuditEntry): Promise<WrittenAudit> {
    const written = await this.insertAudit(entry);
    if (!written) throw new Error('an unguarded audit insert wrote no row');
    return written;
  }

  async auditNewVoucher(entry: AuditEntry, issuedSince: Date): Promise<WrittenAudit | null> {
    if (entry.operation !== 'TRANSFER_OUT' || !entry.voucherCode) {
      throw new Error('auditNewVoucher writes TRANSFER_OUT audits with a voucher code');
    }
    return this.insertAudit(entry, issuedSince);
  }

  /**
   * One statement. With `voucherIssuedSince`, the insert is an INSERT … SELECT that writes nothing when
   * this user has a TRANSFER_OUT audit with the same voucher code created since then (the values are
   * cast, as a SELECT list does not take the columns' types).
   */
  private async insertAudit(entry: AuditEntry, voucherIssuedSince?: Date): Promise<WrittenAudit | null> {
    if (!Number.isSafeInteger(entry.amount)) throw new Error(`audit amount is not whole cents: ${entry.amount}`);
    const positive = POSITIVE_OPERATIONS.has(entry.operation);
    if (positive ? entry.amount < 0 : entry.amount > 0) {
      throw new Error(`a ${entry.operation} audit cannot have amount ${entry.amount}`);
    }
    const values = [
      this.userId,
      centsToDecimalString(entry.amount),
      entry.operation,
      entry.voucherCode ?? null,
      entry.relatedUser ?? null,
      entry.strategyId ?? null,
      entry.strategyName ?? null,
      toWholeSecond(entry.expiryDate),
      JSON.stringify(auditDetails(entry)),
      entry.reason ?? null,
      entry.reference ?? null,
      entry.actor ?? null,
      this.clock.now(),
    ];
    const columns = `insert into quota_audit (user_id, amount, operation, voucher_code, related_user, strategy_id,
         strategy_name, expiry_date, details, reason, reference, actor, create_time)`;
    const rows =
      voucherIssuedSince === undefined
        ? await this.sql.execute<Record<string, unknown>>(
            `${columns} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) returning *`,
            values,
          )
        : await this.sql.execute<Record<string, unknown>>(
            `${columns}
             select ?::text, ?::numeric, ?::text, ?::text, ?::text, ?::bigint, ?::text, ?::timestamptz, ?::text,
                    ?::text, ?::text, ?::text, ?::timestamptz
              where not exists (select 1 from quota_audit
                                 where user_id = ? and create_time >= ? and operation = 'TRANSFER_OUT'
                                   and voucher_code = ?)
             returning *`,
            [...values, this.userId, voucherIssuedSince, entry.voucherCode],
          );
    const row = rows[0];
    if (!row) return null;
    this.audited.push({ operation: entry.operation, amount: entry.amount });
    return { id: String(row.id), row };
  }

  async validTotal(): Promise<Cents> {
    if (this.knownTotal !== null) return this.knownTotal;
    const rows = await this.sql.execute<{ total: string }>(
      `select coalesce(sum(amount), 0)::text as total from quota where user_id = ? and status = 'VALID'`,
      [this.userId],
    );
    return decimalToCents(rows[0]!.total);
  }

  async pushTotal(): Promise<Cents> {
    const total = await this.validTotal();
    try {
      await this.gateway.setTotal(this.userId, total);
    } catch (error) {
      if (totalMayHaveBeenSet(error)) this.gatewayMayBeAhead = true;
      throw error;
    }
    this.gatewayMayBeAhead = true;
    return total;
  }
}

/**
 * Whether a failed setTotal may have been applied all the same, so that a rollback must restore the
 * committed total: an attempt went unanswered or was answered 5xx (the client's `ambiguous`, see
 * gateway.retry.ts). Setting the committed total is harmless.
 */
export function totalMayHaveBeenSet(error: unknown): boolean {
  return isGatewayError(error) && error.ambiguous;
}

/**
 * A user's VALID batches in FIFO order (expiry, then id), as plain rows; `forUpdate` row-locks them
 * (the ledger's read under the user's lock). Readers outside a change (myQuota) use it too: mapping
 * the rows to entities cost more than the query.
 */
export async function readValidBatches(
  sql: Sql,
  userId: string,
  options: { forUpdate?: boolean } = {},
): Promise<Batch[]> {
  const rows = await sql.execute<BatchRecord>(
    `select ${BATCH_COLUMNS} from quota where user_id = ? and status = 'VALID'
      order by expiry_date asc, id asc${options.forUpdate ? ' for update' : ''}`,
    [userId],
  );
  return rows.map(toBatch);
}

/**
 * readValidBatches for many users in one statement (set-based jobs under Ledger.withUsersLocked):
 * each user's VALID batches in FIFO order, row-locked; a user with none is absent.
 */
export async function readValidBatchesOfUsers(sql: Sql, userIds: readonly string[]): Promise<Map<string, Batch[]>> {
  const rows = await sql.execute<BatchRecord>(
    `select ${BATCH_COLUMNS} from quota
      where user_id in (select value from jsonb_array_elements_text(?::jsonb)) and status = 'VALID'
      order by user_id, expiry_date asc, id asc for update`,
    [JSON.stringify(userIds)],
  );
  const byUser = new Map<string, Batch[]>();
  for (const row of rows) {
    const batch = toBatch(row);
    const batches = byUser.get(batch.userId);
    if (batches) batches.push(batch);
    else byUser.set(batch.userId, [batch]);
  }
  return byUser;
}

/**
 * Attributes the gateway's `used` to batches FIFO by earliest expiry (id as tie-break): the earliest
 * batch is consumed first. Returns every batch with what was consumed of it and what is left.
 * Consumption beyond Σ batches stays unattributed; a negative `used` counts as none.
 */
export function attributeUsageFifo(
  batches: Batch[],
  used: Cents,
): { batch: Batch; consumed: Cents; available: Cents }[] {
  let remaining = Math.max(0, used);
  return [...batches].sort(compareFifo).map((batch) => {
    const consumed = Math.min(batch.amount, remaining);
    remaining -= consumed;
    return { batch, consumed, available: batch.amount - consumed };
  });
}

export function compareFifo(a: Batch, b: Batch): number {
  const byExpiry = a.expiryDate.getTime() - b.expiryDate.getTime();
  if (byExpiry !== 0) return byExpiry;
  const left = BigInt(a.id);
  const right = BigInt(b.id);
  return left < right ? -1 : left > right ? 1 : 0;
}

/** The contract's AuditDetails, as stored in `quota_audit.details` (amounts as decimals, times ISO). */
export interface StoredAuditDetails {
  operation: AuditOperation;
  summary: {
    totalAmount: number;
    totalItems: number;
    successfulItems: number;
    failedItems: number;
    expiredItems: number;
    earliestExpiryDate: string | null;
  };
  items: {
    amount: number;
    expiryDate: string;
    status: AuditItemRecord['status'];
    failureReason?: string;
    originalQuota?: number;
    newQuota?: number;
  }[];
}

export function auditDetails(entry: AuditEntry): StoredAuditDetails {
  const earliest = entry.items.reduce<Date | null>(
    (min, item) => (min === null || item.expiryDate < min ? item.expiryDate : min),
    null,
  );
  const count = (status: AuditItemRecord['status']) => entry.items.filter((item) => item.status === status).length;
  return {
    operation: entry.operation,
    summary: {
      // What the audit moved, unsigned: the amount column carries the direction.
      totalAmount: centsToAmount(Math.abs(entry.amount)),
      totalItems: entry.items.length,
      successfulItems: count('SUCCESS'),
      failedItems: count('FAILED'),
      expiredItems: count('EXPIRED'),
      earliestExpiryDate: earliest ? toWholeSecond(earliest).toISOString() : null,
    },
    items: entry.items.map((item) => ({
      amount: centsToAmount(item.amount),
      expiryDate: toWholeSecond(item.expiryDate).toISOString(),
      status: item.status,
      ...(item.failureReason !== undefined ? { failureReason: item.failureReason } : {}),
      ...(item.originalQuota !== undefined ? { originalQuota: centsToAmount(item.originalQuota) } : {}),
      ...(item.newQuota !== undefined ? { newQuota: centsToAmount(item.newQuota) } : {}),
    })),
  };
}

/** Instants are compared at second precision (contract): batches are keyed by whole seconds. */
export function toWholeSecond(instant: Date): Date {
  const time = instant.getTime();
  if (!Number.isFinite(time)) throw badInput('not a valid date');
  return new Date(Math.floor(time / 1000) * 1000);
}

interface BatchRecord {
  id: string | number;
  user_id: string;
  amount: string;
  expiry_date: Date | string;
  status: 'VALID' | 'EXPIRED';
  create_time: Date | string;
}

function toBatch(row: BatchRecord): Batch {
  return {
    id: String(row.id),
    userId: row.user_id,
    amount: decimalToCents(row.amount),
    expiryDate: new Date(row.expiry_date),
    status: row.status,
    createdAt: new Date(row.create_time),
  };
}

function assertPositiveCents(amount: Cents, what: string): void {
  if (!Number.isSafeInteger(amount) || amount <= 0)
    throw new Error(`${what} needs a positive whole number of cents, got ${amount}`);
}
