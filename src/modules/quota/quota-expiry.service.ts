import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, previousYearMonth } from '../../clock.js';
import { sqlOf } from '../../db/driver-transaction.js';
import type { EntityManager } from '../../db/orm.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToAmount, centsToDecimalString, MAX_CENTS } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { isGatewayError } from '../gateway/gateway.errors.js';
import { type ExpirySettlement, planExpirySettlement, settlementRows } from './expiry-settlement.js';
import { auditDetails, type Ledger, readValidBatchesOfUsers, totalMayHaveBeenSet, toWholeSecond } from './ledger.js';
import {
  describeError,
  forEachConcurrently,
  type LedgerJobCounters,
  type LedgerJobProgress,
  LedgerJobTally,
  userRowsInChunks,
} from './ledger-user-scan.js';

export interface ExpiryRunOptions {
  progress?: LedgerJobProgress;
  /** Aborted = stop before the next chunk of users (shutdown). */
  signal?: AbortSignal;
  /** Users per chunk: one usage insert and one settlement transaction each. */
  chunkSize?: number;
  /** Gateway calls in flight at once. */
  gatewayConcurrency?: number;
}

export interface ExpiryRunResult extends LedgerJobCounters {
  /** `YYYY-MM` the usage was recorded for (last month, configured zone). */
  yearMonth: string;
  usageRecorded: number;
  /** Users whose expired batches were settled (committed), including those whose total push failed. */
  settledUsers: number;
}

/**
 * 500 users a transaction: each holds one advisory lock per user (PostgreSQL's shared lock table has
 * room for max_locks_per_transaction × max_connections, 64 × 100 by default) and ~10 row locks.
 */
const DEFAULT_CHUNK_SIZE = 500;
const DEFAULT_GATEWAY_CONCURRENCY = 16;
const ACTOR = 'job:expire-quotas';

type SettlementOutcome =
  | { kind: 'nothing' }
  | { kind: 'settled'; totalPushError: string | null }
  | { kind: 'failed'; reason: string };

/** A user with the gateway's used as read for step 1. */
interface UserUsed {
  userId: string;
  used: Cents;
}

/** A chunk after step 1, ready for step 2. */
interface PreparedChunk {
  /** Users whose used could not be read, or whose usage could not be recorded: nothing else is done. */
  failed: { userId: string; reason: string }[];
  /** Users whose usage step is done, with the used read. */
  recorded: UserUsed[];
  /** Those of them with something expired. */
  due: UserUsed[];
  usageRecorded: number;
}

interface PlannedUser {
  userId: string;
  plan: ExpirySettlement;
}

/** What the gateway was told inside a settlement transaction, for the cleanup if it does not commit. */
interface GatewayWrites {
  /** Write calls started (0 = the gateway has heard nothing of this transaction). */
  calls: number;
  /** Users whose used was reset, with by how much: their settlement has to commit. */
  resets: Map<string, Cents>;
  /** Users whose total was (or may have been) set to a Σ the commit must confirm. */
  totals: Set<string>;
}

/**
 * Monthly expiry (SPEC §5, "Monthly expiry" 1–3): for every user with VALID batches, record last
 * month's gateway usage, then settle the batches that have expired.
 *
 * Users are walked in keyset chunks. Per chunk, the gateway's `used` is read for every user (a few
 * calls in flight), the usage rows are written with one statement, and the users with something due
 * are settled in one transaction that holds their ledger locks: their batches are read with one
 * statement, planned in memory, and written with a handful of set-based statements; then the gateway
 * is told, user by user. Per user it stays all or nothing (see settle). While one chunk is
 * settled, the next one's gateway reads and usage rows are already under way.
 */
export class QuotaExpiryService {
  constructor(
    private readonly orm: MikroORM,
    private readonly ledger: Ledger,
    private readonly gateway: GatewayClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  async runMonthlyExpiry(options: ExpiryRunOptions = {}): Promise<ExpiryRunResult> {
    // The run's "now", read once: every user of the run is settled and recorded as of this instant.
    const now = this.clock.now();
    const yearMonth = previousYearMonth(now, this.clock.timeZone);
    const concurrency = options.gatewayConcurrency ?? DEFAULT_GATEWAY_CONCURRENCY;
    const tally = new LedgerJobTally(options.progress);
    let usageRecorded = 0;
    let settledUsers = 0;

    const chunks = userRowsInChunks<{ user_id: string; has_expired: boolean }>(
      this.orm.em.fork(),
      `select user_id, bool_or(expiry_date < ?) as has_expired
         from quota where status = 'VALID' and user_id > ?
         group by user_id order by user_id limit ?`,
      [now],
      options.chunkSize ?? DEFAULT_CHUNK_SIZE,
    );
    const iterator = chunks[Symbol.asyncIterator]();
    const prepareNext = async (): Promise<PreparedChunk | null> => {
      if (options.signal?.aborted) return null;
      const next = await iterator.next();
      return next.done ? null : this.prepareChunk(next.value, yearMonth, now, concurrency);
    };
    let pending = prepareNext();
    for (;;) {
      const chunk = await pending;
      if (!chunk || options.signal?.aborted) break;
      // Step 1 of the next chunk (gateway reads, one insert) overlaps step 2 of this one, so the
      // gateway calls go on while PostgreSQL works and the other way round.
      pending = prepareNext();
      // Awaited at the top of the next round; until then a failure must not count as unhandled.
      pending.catch(() => undefined);

      for (const { userId, reason } of chunk.failed) tally.failed(userId, reason);
      usageRecorded += chunk.usageRecorded;
      const outcomes = chunk.due.length > 0 ? await this.settleChunk(chunk.due, now, concurrency) : new Map();
      for (const { userId } of chunk.recorded) {
        const outcome: SettlementOutcome = outcomes.get(userId) ?? { kind: 'nothing' };
        if (outcome.kind === 'settled') settledUsers += 1;
        if (outcome.kind === 'failed') tally.failed(userId, outcome.reason);
        else if (outcome.kind === 'settled' && outcome.totalPushError !== null) {
          tally.failed(userId, `settled, but the gateway total was not set: ${outcome.totalPushError}`);
        } else tally.succeeded();
      }
    }
    const result = { ...tally.counters, yearMonth, usageRecorded, settledUsers };
    this.logger.info(
      { processed: result.processed, succeeded: result.succeeded, failed: result.failed, usageRecorded, settledUsers },
      options.signal?.aborted ? 'monthly expiry stopped (shutdown)' : 'monthly expiry finished',
    );
    return result;
  }

  /**
   * Step 1 for a chunk: every user's gateway used (a few calls at a time), then last month's usage
   * rows. A user whose used cannot be read is failed and left alone; if the usage rows cannot be
   * written, nothing of the chunk is settled (all of it is left for the next run).
   */
  private async prepareChunk(
    rows: { user_id: string; has_expired: boolean }[],
    yearMonth: string,
    now: Date,
    concurrency: number,
  ): Promise<PreparedChunk> {
    const reads = await this.readUsed(
      rows.map((row) => row.user_id),
      concurrency,
    );
    const prepared: PreparedChunk = { failed: [], recorded: [], due: [], usageRecorded: 0 };
    const readable: (UserUsed & { hasExpired: boolean })[] = [];
    for (const row of rows) {
      const read = reads.get(row.user_id)!;
      if ('error' in read) {
        prepared.failed.push({ userId: row.user_id, reason: describeError(read.error) });
        this.logger.warn(
          { userId: row.user_id, err: read.error },
          'monthly expiry could not read gateway used; user left for the next run',
        );
      } else {
        readable.push({ userId: row.user_id, used: read.used, hasExpired: row.has_expired });
      }
    }
    try {
      prepared.usageRecorded = await this.recordUsage(readable, yearMonth, now);
    } catch (error) {
      for (const { userId } of readable) prepared.failed.push({ userId, reason: describeError(error) });
      this.logger.warn(
        { err: error, users: readable.length },
        'monthly usage could not be recorded; chunk left for the next run',
      );
      return prepared;
    }
    prepared.recorded = readable.map(({ userId, used }) => ({ userId, used }));
    prepared.due = readable.filter((user) => user.hasExpired).map(({ userId, used }) => ({ userId, used }));
    return prepared;
  }

  /** Gateway used of each user, a few calls at a time; a failed read is kept as the user's error. */
  private async readUsed(
    userIds: string[],
    concurrency: number,
  ): Promise<Map<string, { used: Cents } | { error: unknown }>> {
    const reads = new Map<string, { used: Cents } | { error: unknown }>();
    await forEachConcurrently(userIds, concurrency, async (userId) => {
      try {
        const used = await this.gateway.getUsed(userId);
        // More than any amount we store (numeric(14,2)) would fail the chunk's one usage insert and so
        // every user of the chunk, run after run: only this user is left, with the reason.
        if (used > MAX_CENTS) {
          throw new Error(`the gateway reports a used of ${centsToAmount(used)}, beyond what can be recorded`);
        }
        reads.set(userId, { used });
      } catch (error) {
        reads.set(userId, { error });
      }
    });
    return reads;
  }

  /**
   * Step 1, one statement for the chunk: last month's usage of each user with used > 0. It commits on
   * its own, before and independently of the settlement, so a settlement that fails (and resets
   * nothing) cannot lose it. The first record of a month wins (`do nothing` on conflict): it was taken
   * closest to the month boundary, and a later re-run would include consumption of the new month.
   */
  private async recordUsage(users: UserUsed[], yearMonth: string, now: Date): Promise<number> {
    const rows = users
      .filter((user) => user.used > 0)
      .map((user) => ({ user_id: user.userId, used: centsToDecimalString(user.used) }));
    if (rows.length === 0) return 0;
    const inserted = await this.orm.em.fork().execute(
      `insert into monthly_quota_usage (user_id, year_month, used_quota, record_time, create_time)
       select x.user_id, ?, x.used, ?, ? from jsonb_to_recordset(?::jsonb) as x(user_id text, used numeric)
       on conflict (user_id, year_month) do nothing
       returning id`,
      [yearMonth, now, now, JSON.stringify(rows)],
    );
    return inserted.length;
  }

  /**
   * Step 2 for a chunk: settled in one transaction (settle). If that fails before the gateway heard
   * of anything (a database error), the same settlement is run for each user on their own — a chunk
   * of one — so one user's problem cannot hold back the others; a user whose own settlement fails so
   * is left untouched for the next run.
   */
  private async settleChunk(due: UserUsed[], now: Date, concurrency: number): Promise<Map<string, SettlementOutcome>> {
    try {
      return await this.settle(due, now, concurrency);
    } catch (cause) {
      this.logger.warn({ err: cause, users: due.length }, 'settling a chunk of users failed; settling them one by one');
    }
    const outcomes = new Map<string, SettlementOutcome>();
    for (const user of due) {
      try {
        for (const [userId, outcome] of await this.settle([user], now, concurrency)) outcomes.set(userId, outcome);
      } catch (error) {
        outcomes.set(user.userId, { kind: 'failed', reason: describeError(error) });
        this.logger.warn(
          { userId: user.userId, err: error },
          'monthly expiry failed for a user; left for the next run',
        );
      }
    }
    return outcomes;
  }

  /**
   * Step 2 for a chunk of users, in one transaction holding all their ledger locks.
   *
   * The settlements are planned from the locked batches and the `used` read for step 1 (used only
   * grows meanwhile, and what is consumed after the read stays on the gateway: the reset is a delta),
   * then written — inside a savepoint — before the gateway hears of anything. Then, user by user:
   * - used is reset with a delta of −used. A user whose reset fails, ambiguously or not, is taken out:
   *   the transaction goes back to the savepoint and writes the others again, so that user stays
   *   untouched for the next run (a delta that may have arrived is never repeated; an ambiguous one is
   *   logged for a human, as the next run cannot tell it from no consumption).
   * - the absolute total (Σ VALID after, as planned from the locked batches) is set. A user with
   *   nothing to reset whose total fails is taken out as above (set back if it may have arrived); a
   *   user whose used was reset is committed all the same (rolling back would count that consumption
   *   twice) and reported; quota sync repairs the total.
   * If the transaction fails after a gateway call, nothing in our power undoes the resets: they are
   * logged, the totals set are restored, and every user of the chunk is failed. If it fails before any
   * (a database error), it throws, having changed nothing anywhere: see settleChunk.
   */
  private async settle(due: UserUsed[], now: Date, concurrency: number): Promise<Map<string, SettlementOutcome>> {
    const outcomes = new Map<string, SettlementOutcome>();
    const sent: GatewayWrites = { calls: 0, resets: new Map(), totals: new Set() };
    try {
      await this.ledger.withUsersLocked(
        this.orm.em.fork(),
        due.map((user) => user.userId),
        async (transaction) => {
          const batches = await readValidBatchesOfUsers(
            sqlOf(transaction),
            due.map((user) => user.userId),
          );
          const planned: PlannedUser[] = [];
          for (const { userId, used } of due) {
            const plan = planExpirySettlement(batches.get(userId) ?? [], used, now);
            // null: another instance (or an earlier run) settled this user since the scan looked.
            if (plan) planned.push({ userId, plan });
            else outcomes.set(userId, { kind: 'nothing' });
          }
          if (planned.length === 0) return { result: undefined, audited: [] };

          await transaction.execute('savepoint expiry_settlement');
          await this.writeSettlements(transaction, planned);
          // The first gateway round, one call per user: used is reset (−used, never repeated) for users
          // who consumed something; users with nothing to reset hear only their total, so it is set
          // now. A user it fails for is taken out: back to the savepoint, the others written again, and
          // that user stays untouched for the next run. Users whose used was reset must commit whatever
          // their total does below (rolling back would count that consumption twice).
          const refused = await this.firstGatewayRound(planned, sent, concurrency);
          let settled = planned;
          if (refused.size > 0) {
            settled = planned.filter((user) => !refused.has(user.userId));
            await transaction.execute('rollback to savepoint expiry_settlement');
            if (settled.length > 0) await this.writeSettlements(transaction, settled);
            for (const [userId, reason] of refused) outcomes.set(userId, { kind: 'failed', reason });
          }

          // Σ VALID after is the plan's `after`, no query needed: the plan was made from every VALID
          // batch of the user, read FOR UPDATE in this transaction, which holds the user's ledger lock
          // (every change of a user's batches takes it, a new batch included, which row locks alone
          // would not keep out); since then only writeSettlements changed them, exactly as planned (each
          // statement's row count is checked). The ledger's knownTotal rests on the same rule.
          for (const { userId } of settled) outcomes.set(userId, { kind: 'settled', totalPushError: null });
          const reset = settled.filter(({ plan }) => plan.usedReset > 0);
          await forEachConcurrently(reset, concurrency, async ({ userId, plan }) => {
            outcomes.set(userId, { kind: 'settled', totalPushError: await this.pushTotal(userId, plan.after, sent) });
          });
          return {
            result: undefined,
            audited: settled.map(({ plan }) => ({ operation: 'EXPIRE' as const, amount: plan.after - plan.before })),
          };
        },
      );
    } catch (error) {
      if (sent.calls === 0) throw error;
      await this.afterFailedCommit(sent, error);
      for (const { userId } of due) outcomes.set(userId, { kind: 'failed', reason: describeError(error) });
    }
    return outcomes;
  }

  /** The planned row changes, a statement per kind of change, each checked against the locked rows. */
  private async writeSettlements(transaction: EntityManager, planned: PlannedUser[]): Promise<void> {
    const at = this.clock.now();
    const rows = settlementRows(planned, ACTOR);
    if (rows.expire.length > 0) {
      const expired = await transaction.execute(
        `update quota set status = 'EXPIRED', update_time = ?
          where id in (select value::bigint from jsonb_array_elements_text(?::jsonb)) and status = 'VALID'
          returning id`,
        [at, JSON.stringify(rows.expire)],
      );
      assertRowCount('expired', expired.length, rows.expire.length);
    }
    if (rows.reduce.length > 0) {
      const reduced = await transaction.execute(
        `update quota q set amount = q.amount - x.consumed, update_time = ?
           from jsonb_to_recordset(?::jsonb) as x(id bigint, consumed numeric)
          where q.id = x.id and q.status = 'VALID' and q.amount > x.consumed
          returning q.id`,
        [at, JSON.stringify(rows.reduce.map((row) => ({ id: row.id, consumed: centsToDecimalString(row.consumed) })))],
      );
      assertRowCount('reduced', reduced.length, rows.reduce.length);
    }
    if (rows.remove.length > 0) {
      // A batch settled to 0 is removed, as Ledger.debit does, so a later grant with that expiry starts afresh.
      const removed = await transaction.execute(
        `delete from quota q using jsonb_to_recordset(?::jsonb) as x(id bigint, amount numeric)
          where q.id = x.id and q.status = 'VALID' and q.amount = x.amount
          returning q.id`,
        [JSON.stringify(rows.remove.map((row) => ({ id: row.id, amount: centsToDecimalString(row.amount) })))],
      );
      assertRowCount('removed', removed.length, rows.remove.length);
    }
    await transaction.execute(
      `insert into quota_audit (user_id, amount, operation, expiry_date, details, reason, actor, create_time)
       select x.user_id, x.amount, 'EXPIRE', x.expiry_date, x.details, x.reason, ?, ?
         from jsonb_to_recordset(?::jsonb) as x(user_id text, amount numeric, expiry_date timestamptz, details text, reason text)`,
      [
        ACTOR,
        at,
        JSON.stringify(
          rows.audits.map(({ userId, entry }) => ({
            user_id: userId,
            amount: centsToDecimalString(entry.amount),
            expiry_date: toWholeSecond(entry.expiryDate).toISOString(),
            details: JSON.stringify(auditDetails(entry)),
            reason: entry.reason,
          })),
        ),
      ],
    );
  }

  /**
   * One call per planned user: resets used (−used, never retried once it may have arrived) when the
   * user consumed something, else sets the total (Σ VALID after). Returns the users it failed for. A
   * total that failed but may have been applied anyway (no answer, a 5xx) is set back to Σ VALID
   * before, which is what the database keeps for them (absolute writes are safe to repeat).
   */
  private async firstGatewayRound(
    planned: PlannedUser[],
    sent: GatewayWrites,
    concurrency: number,
  ): Promise<Map<string, string>> {
    const refused = new Map<string, string>();
    await forEachConcurrently(planned, concurrency, async ({ userId, plan }) => {
      sent.calls += 1;
      if (plan.usedReset > 0) {
        try {
          await this.gateway.addUsed(userId, -plan.usedReset);
          sent.resets.set(userId, plan.usedReset);
        } catch (error) {
          // Taken out and rolled back; an ambiguous failure may have reset used all the same.
          this.warnIfResetMayHaveArrived(userId, plan.usedReset, error);
          refused.set(userId, describeError(error));
        }
        return;
      }
      sent.totals.add(userId);
      try {
        await this.gateway.setTotal(userId, plan.after);
        return;
      } catch (error) {
        refused.set(userId, describeError(error));
        if (!totalMayHaveBeenSet(error)) {
          sent.totals.delete(userId);
          return;
        }
      }
      try {
        await this.gateway.setTotal(userId, plan.before);
        sent.totals.delete(userId); // set back: a failed commit has nothing to restore for this user
      } catch (error) {
        // Still listed in sent.totals: a failed commit restores it again.
        this.logger.error(
          { userId, err: error },
          'setting back a gateway total that may have been applied failed; run SYNC_QUOTAS',
        );
      }
    });
    return refused;
  }

  /** gateway.setTotal(Σ VALID after); null when it worked, else why not (the settlement commits anyway). */
  private async pushTotal(userId: string, total: Cents, sent: GatewayWrites): Promise<string | null> {
    sent.calls += 1;
    sent.totals.add(userId);
    try {
      await this.gateway.setTotal(userId, total);
      return null;
    } catch (error) {
      // Kept for afterFailedCommit when it may have been applied (a 5xx included, as the ledger does).
      if (!totalMayHaveBeenSet(error)) sent.totals.delete(userId);
      return this.totalNotSet(userId, error);
    }
  }

  /** A reset whose answer was lost may have been applied: someone must check the user. */
  private warnIfResetMayHaveArrived(userId: string, usedReset: Cents, error: unknown): void {
    if (!(isGatewayError(error) && error.ambiguous)) return;
    this.logger.warn(
      { userId, used: centsToAmount(usedReset), err: error },
      'resetting gateway used failed ambiguously: it may have been applied; check this user before the next run',
    );
  }

  /** The settlement commits without its total: logged for SYNC_QUOTAS; returns the reason for the counters. */
  private totalNotSet(userId: string, error: unknown): string {
    this.logger.error(
      { userId, err: error },
      'expiry settled but the gateway total could not be set; SYNC_QUOTAS will repair it',
    );
    return describeError(error);
  }

  /**
   * The settlement transaction failed after the gateway was told: the resets cannot be undone (each
   * such user needs a human), and the totals set are put back to the committed Σ (one attempt each;
   * quota sync repairs what that misses).
   */
  private async afterFailedCommit(sent: GatewayWrites, cause: unknown): Promise<void> {
    for (const [userId, used] of sent.resets) {
      this.logger.error(
        { userId, used: centsToAmount(used), err: cause },
        'gateway used was reset but the expiry settlement did not commit: this user needs manual repair',
      );
    }
    for (const userId of sent.totals) await this.ledger.restoreCommittedTotal(this.orm.em.fork(), userId, cause);
  }
}

/** Under the users' locks every planned row must be there as read; anything else is a bug, not a race. */
function assertRowCount(what: string, actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`expiry settlement ${what} ${actual} batches, expected ${expected}`);
}
