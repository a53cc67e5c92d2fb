import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../clock.js';
import { type Sql, sqlOf } from '../../db/driver-transaction.js';
import type { EntityManager } from '../../db/orm.js';
import { isDomainError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToDecimalString, decimalToCents } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { auditDetails, type Ledger, totalMayHaveBeenSet, toWholeSecond } from '../quota/ledger.js';
import { forEachConcurrently } from '../quota/ledger-user-scan.js';
import { requireGrantTerms, requireUserId } from '../quota/quota-input.js';
import type { QuotaStrategy } from './strategy.entity.js';

/** A user this run claimed, with the id of its `processing` execution. */
export interface Claim {
  userId: string;
  executionId: string;
}

/** What a chunk grant needs of the executor's run (its RunState has all of it). */
export interface ChunkGrantRun {
  strategy: Pick<QuotaStrategy, 'id' | 'name' | 'maxExecPerUser'>;
  single: boolean;
  amount: Cents;
  expiryDate: Date;
  logger: Logger;
  execution: { signal: AbortSignal };
}

export interface ChunkGrantOutcome {
  granted: number;
  failed: number;
}

type ChunkLedger = Pick<Ledger, 'withUsersLocked' | 'withUserLedger' | 'restoreCommittedTotal'>;

/** A completed user as steps 1–4 wrote them: the gateway total to set. */
interface WrittenUser extends Claim {
  total: Cents;
}

interface Written {
  users: WrittenUser[];
  /** Claims step 1 did not complete (no longer this run's, or the user reached maxExecPerUser). */
  notCompleted: Claim[];
}

/** What happened inside the chunk's transaction, kept outside it for the clean-up if it fails. */
interface ChunkState {
  written?: Written;
  /** setTotal calls started (0 = the gateway has heard nothing of this transaction). */
  calls: number;
  /** Users whose total was (or may have been) set to a Σ the commit must confirm. */
  ahead: Set<string>;
  /** Users whose setTotal failed, with the error: taken out, their claim FAILED. */
  refused: Map<string, unknown>;
  /** Users whose setTotal was never sent (shutdown): taken out, their claim released. */
  unsent: Set<string>;
}

const SAVEPOINT = 'strategy_chunk_grant';

/**
 * Grants a chunk of claimed users in one transaction, with the outcome per user of one grant each
 * (SPEC §4: the batch, the RECHARGE audit, the execution COMPLETED and the gateway total, all or
 * nothing per user). The transaction holds every user's ledger lock (Ledger.withUsersLocked) and
 * writes with one statement per step for the whole chunk:
 * 1. complete the executions still `processing` — for a periodic strategy with a maximum, only of
 *    users whose completed executions are below it (under the locks the count cannot move); the
 *    users left out are not granted and their claims are released, as one grant's NotCompleted;
 * 2. add the amount to each user's VALID batch with the run's expiry (created if there is none);
 * 3. write each user's RECHARGE audit, the same row a one-user grant writes;
 * 4. read each user's Σ VALID;
 * then sets each user's gateway total to that Σ, a few calls at a time. A user whose write fails is
 * taken out: the transaction goes back to a savepoint taken before step 1 and writes the others again
 * (the same rows, so the same totals: nothing is sent twice); after the commit the user's execution is
 * marked FAILED, and a total that may have been applied is set back to the committed Σ. Shutdown stops
 * the calls between users; the users not yet sent are taken out the same way and their claims released.
 *
 * If the transaction fails before the gateway heard of anything (a database error: e.g. one user's
 * batch cannot hold the amount), nothing is written and `grant` answers null: the executor grants that
 * chunk one user at a time, so only that user fails. If it fails after (the commit itself), the totals
 * set are restored and every user of the chunk is marked FAILED, to be tried again next run.
 */
export class StrategyChunkGrant {
  constructor(
    private readonly orm: MikroORM,
    private readonly ledger: ChunkLedger,
    private readonly gateway: GatewayClient,
    private readonly clock: Clock,
    private readonly concurrency: number,
  ) {}

  /** Grants the claims; null when nothing was done and the chunk must be granted one user at a time. */
  async grant(run: ChunkGrantRun, claims: Claim[]): Promise<ChunkGrantOutcome | null> {
    if (!this.bulkable(run, claims)) return null;
    const state: ChunkState = { calls: 0, ahead: new Set(), refused: new Map(), unsent: new Set() };
    let kept: WrittenUser[];
    try {
      kept = await this.ledger.withUsersLocked(
        this.orm.em.fork(),
        claims.map((claim) => claim.userId),
        async (transaction) => {
          await transaction.execute(`savepoint ${SAVEPOINT}`);
          const written = await this.write(transaction, run, claims);
          state.written = written;
          await this.setTotals(run, written.users, state);
          if (state.refused.size === 0 && state.unsent.size === 0) return committed(run, written.users);

          const remaining = written.users.filter(
            (user) => !state.refused.has(user.userId) && !state.unsent.has(user.userId),
          );
          await transaction.execute(`rollback to savepoint ${SAVEPOINT}`);
          if (remaining.length > 0) assertSameTotals(remaining, (await this.write(transaction, run, remaining)).users);
          return committed(run, remaining);
        },
      );
    } catch (error) {
      if (state.calls === 0) {
        run.logger.warn({ err: error, users: claims.length }, 'granting a chunk failed; granting its users one by one');
        return null;
      }
      return this.afterFailedCommit(run, state, error);
    }

    for (const [userId, error] of state.refused) {
      if (state.ahead.has(userId)) await this.ledger.restoreCommittedTotal(this.orm.em.fork(), userId, error);
    }
    await this.markFailed(run, state.refused, state.written!);
    await releaseClaims(this.orm.em.fork(), [
      ...state.written!.notCompleted.map((claim) => claim.executionId),
      ...state.written!.users.filter((user) => state.unsent.has(user.userId)).map((user) => user.executionId),
    ]);
    return { granted: kept.length, failed: state.refused.size };
  }

  /**
   * Whether the chunk can be granted in bulk: the checks QuotaService.grantQuota makes of every grant.
   * They hold for the whole run or for nobody (the ids come from the directory), so when they fail the
   * one-by-one path answers each user with the error a grant gives.
   */
  private bulkable(run: ChunkGrantRun, claims: Claim[]): boolean {
    if (claims.length === 0) return false;
    try {
      requireGrantTerms(run.amount, run.expiryDate, this.clock.now());
      for (const claim of claims) requireUserId(claim.userId);
    } catch {
      return false;
    }
    return new Set(claims.map((claim) => claim.userId)).size === claims.length;
  }

  /** Steps 1–4 for the claims, a statement each; returns the completed users with their new Σ VALID. */
  private async write(transaction: EntityManager, run: ChunkGrantRun, claims: Claim[]): Promise<Written> {
    const now = this.clock.now();
    const expiry = toWholeSecond(run.expiryDate);
    const amount = centsToDecimalString(run.amount);

    // 1. Exactly-once: complete each execution of the chunk that may still be completed.
    const done = await completeExecutions(
      sqlOf(transaction),
      run,
      claims.map((claim) => claim.executionId),
      now,
    );
    const granted = claims.filter((claim) => done.has(claim.executionId));
    const notCompleted = claims.filter((claim) => !done.has(claim.executionId));
    if (granted.length === 0) return { users: [], notCompleted };
    const userIds = JSON.stringify(granted.map((claim) => claim.userId));

    // 2. As Ledger credit: one VALID batch per user and expiry.
    const batches = await transaction.execute<{ user_id: string; amount: string }[]>(
      `insert into quota (user_id, amount, expiry_date, status, create_time, update_time)
       select g.user_id, ?, ?, 'VALID', ?, ? from jsonb_array_elements_text(?::jsonb) as g(user_id)
       on conflict (user_id, expiry_date) where status = 'VALID'
       do update set amount = quota.amount + excluded.amount, update_time = excluded.update_time
       returning user_id, amount::text as amount`,
      [amount, expiry, now, now, userIds],
    );
    const batchAmount = new Map(batches.map((row) => [row.user_id, decimalToCents(row.amount)]));

    // 3. As QuotaService.grantQuota's audit through the ledger: the same columns and details.
    await transaction.execute(
      `insert into quota_audit (user_id, amount, operation, voucher_code, related_user, strategy_id, strategy_name,
         expiry_date, details, reason, reference, actor, create_time)
       select x.user_id, ?, 'RECHARGE', null, null, ?, ?, ?, x.details, null, null, ?, ?
         from jsonb_to_recordset(?::jsonb) as x(user_id text, details text)`,
      [
        amount,
        run.strategy.id,
        run.strategy.name,
        expiry,
        `strategy:${run.strategy.id}`,
        now,
        JSON.stringify(
          granted.map(({ userId }) => {
            const newQuota = batchAmount.get(userId);
            if (newQuota === undefined) throw new Error(`chunk grant: no batch returned for ${userId}`);
            return { user_id: userId, details: JSON.stringify(rechargeDetails(run.amount, expiry, newQuota)) };
          }),
        ),
      ],
    );

    // 4. Σ VALID per user, read under the locks.
    const totals = await transaction.execute<{ user_id: string; total: string }[]>(
      `select user_id, sum(amount)::text as total from quota
        where user_id in (select value from jsonb_array_elements_text(?::jsonb)) and status = 'VALID'
        group by user_id`,
      [userIds],
    );
    const totalOf = new Map(totals.map((row) => [row.user_id, decimalToCents(row.total)]));
    return { users: granted.map((claim) => ({ ...claim, total: totalOf.get(claim.userId) ?? 0 })), notCompleted };
  }

  /** gateway.setTotal(Σ) for each user, `concurrency` at a time; shutdown stops between users. */
  private async setTotals(run: ChunkGrantRun, users: WrittenUser[], state: ChunkState): Promise<void> {
    await forEachConcurrently(users, this.concurrency, async ({ userId, total }) => {
      if (run.execution.signal.aborted) {
        state.unsent.add(userId);
        return;
      }
      state.calls += 1;
      try {
        await this.gateway.setTotal(userId, total);
        state.ahead.add(userId);
      } catch (error) {
        if (totalMayHaveBeenSet(error)) state.ahead.add(userId);
        state.refused.set(userId, error);
      }
    });
  }

  /**
   * The transaction failed after the gateway was told: every total set is put back to the committed Σ,
   * the chunk's users are marked FAILED (to be tried again), and the claims not granted anyway released.
   */
  private async afterFailedCommit(run: ChunkGrantRun, state: ChunkState, cause: unknown): Promise<ChunkGrantOutcome> {
    for (const userId of state.ahead) await this.ledger.restoreCommittedTotal(this.orm.em.fork(), userId, cause);
    const written = state.written!;
    const failed = new Map(state.refused);
    for (const user of written.users)
      if (!state.unsent.has(user.userId) && !failed.has(user.userId)) failed.set(user.userId, cause);
    await this.markFailed(run, failed, written);
    await releaseClaims(this.orm.em.fork(), [
      ...written.notCompleted.map((claim) => claim.executionId),
      ...written.users.filter((user) => state.unsent.has(user.userId)).map((user) => user.executionId),
    ]);
    return { granted: 0, failed: failed.size };
  }

  /** The executions of users whose grant failed: FAILED with the error, as one grant's failure. */
  private async markFailed(run: ChunkGrantRun, failed: Map<string, unknown>, written: Written): Promise<void> {
    if (failed.size === 0) return;
    const rows = written.users
      .filter((user) => failed.has(user.userId))
      .map((user) => {
        const error = failed.get(user.userId);
        run.logger.warn({ userId: user.userId, err: error }, 'grant failed; the user is tried again next run');
        return { id: user.executionId, error: describeGrantError(error) };
      });
    await this.orm.em
      .fork()
      .execute(
        `update quota_execute x set status = 'failed', error = f.error, update_time = ?
           from jsonb_to_recordset(?::jsonb) as f(id bigint, error text)
          where x.id = f.id and x.status = 'processing'`,
        [this.clock.now(), JSON.stringify(rows)],
      )
      .catch((markError) =>
        run.logger.error({ err: markError, executions: rows.length }, 'could not mark executions FAILED'),
      );
  }
}

/** The committed users and, for the ledger's observer, their RECHARGE audits. */
function committed(run: ChunkGrantRun, users: WrittenUser[]) {
  return { result: users, audited: users.map(() => ({ operation: 'RECHARGE' as const, amount: run.amount })) };
}

/** The details a one-user grant writes (QuotaService.grantQuota): one SUCCESS item, before and after. */
function rechargeDetails(amount: Cents, expiry: Date, newQuota: Cents) {
  return auditDetails({
    operation: 'RECHARGE',
    amount,
    expiryDate: expiry,
    items: [{ amount, expiryDate: expiry, status: 'SUCCESS', originalQuota: newQuota - amount, newQuota }],
  });
}

/** Under the locks the rows written again are those the gateway was told; anything else is a bug. */
function assertSameTotals(expected: WrittenUser[], actual: WrittenUser[]): void {
  const totals = new Map(actual.map((user) => [user.userId, user.total]));
  if (actual.length !== expected.length || expected.some((user) => totals.get(user.userId) !== user.total)) {
    throw new Error('chunk grant: writing the chunk again gave other totals than those set at the gateway');
  }
}

/** `CODE: message` for the execution's error column; no internals for unexpected errors. */
export function describeGrantError(error: unknown): string {
  if (isDomainError(error)) return `${error.code}: ${error.message}`;
  return 'INTERNAL_SERVER_ERROR: unexpected error while granting (see the server log)';
}

/** Claims a run will not grant (shutdown, limit reached): gone, as if never claimed. */
export async function releaseClaims(em: EntityManager, executionIds: readonly string[]): Promise<void> {
  if (executionIds.length === 0) return;
  await em.execute(
    `delete from quota_execute where status = 'processing' and id in (select jsonb_array_elements_text(?::jsonb)::bigint)`,
    [JSON.stringify(executionIds)],
  );
}

/**
 * Exactly-once, in one statement, inside the grant's transaction with the users' ledger locks held:
 * completes each execution only while it is still a claim (`processing`) and, for a periodic strategy
 * with a maximum, only while the user's completed executions are below it (the lock orders one user's
 * grants, so two fires cannot both pass the count). Returns the ids it completed. Used for a chunk and
 * for one user (StrategyExecutor.complete).
 */
export async function completeExecutions(
  sql: Sql,
  run: { single: boolean; strategy: Pick<QuotaStrategy, 'id' | 'maxExecPerUser'> },
  executionIds: readonly string[],
  now: Date,
): Promise<Set<string>> {
  const limited = !run.single && run.strategy.maxExecPerUser > 0;
  const completed = await sql.execute<{ id: string | number }>(
    `update quota_execute x set status = 'completed', error = null, update_time = ?
      where x.id in (select value::bigint from jsonb_array_elements_text(?::jsonb)) and x.status = 'processing'${
        limited
          ? ` and (select count(*) from quota_execute done
                   where done.strategy_id = ? and done.user_id = x.user_id and done.status = 'completed') < ?`
          : ''
      }
      returning x.id`,
    [now, JSON.stringify(executionIds), ...(limited ? [run.strategy.id, run.strategy.maxExecPerUser] : [])],
  );
  return new Set(completed.map((row) => String(row.id)));
}
