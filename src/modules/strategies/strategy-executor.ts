import type { MikroORM } from '@mikro-orm/postgresql';
import { batchNumber, type Clock } from '../../clock.js';
import type { DefaultExpiryRule } from '../../config.js';
import type { Sql } from '../../db/driver-transaction.js';
import { isSqlState, SqlState } from '../../db/sql-state.js';
import { DomainError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToDecimalString, decimalToCents } from '../../money.js';
import type { EmployeeDirectory } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { JobExecution } from '../jobs/job-runner.js';
import type { Ledger } from '../quota/ledger.js';
import { forEachConcurrently } from '../quota/ledger-user-scan.js';
import type { QuotaService } from '../quota/quota.service.js';
import { type ConditionAst, evaluateCondition, parseCondition } from './condition/index.js';
import { conditionContext } from './condition-context.js';
import type { QuotaStrategy } from './strategy.entity.js';
import { type Candidate, type CandidateSource, type CandidateUser } from './strategy-candidates.js';
import {
  type Claim,
  completeExecutions,
  describeGrantError,
  releaseClaims,
  StrategyChunkGrant,
} from './strategy-chunk-grant.js';
import { grantExpiry } from './strategy-rules.js';

/**
 * Executes one strategy in one run (SPEC §4). Per granted user:
 * 1. claim: insert the execution as `processing` (`on conflict do nothing`); the unique indexes of the
 *    strategies migration let exactly one run claim a user for a single strategy or for a fire;
 *    losing the claim means another run has the user, and this one skips them;
 * 2. grant: the batch, the RECHARGE audit and the execution marked COMPLETED (only if it is still
 *    this run's claim, and, for periodic strategies, only below `maxExecPerUser` — checked under the
 *    user's ledger lock, so two fires cannot both pass it), then the gateway total, in one transaction;
 * 3. on failure: the user's grant rolled back; the execution is marked FAILED with the error, and the
 *    next run tries the user again.
 *
 * Speed (bench/scan.ts, bench/README.md): users come in keyset chunks, decided in SQL where the
 * condition allows (then only their ids are read), claimed one chunk per statement, and granted a
 * chunk per transaction (StrategyChunkGrant: a statement per step for the whole chunk under all its
 * users' ledger locks, then the gateway totals `concurrency` at a time, a user whose total cannot be
 * set taken out alone). A chunk whose transaction fails before the gateway heard of it is granted one
 * user at a time (grantOne: QuotaService.grantQuota, whose transaction also completes the execution),
 * so one user's problem fails only that user. A run holds at most `concurrency` + 1 database connections.
 */

export interface StrategyExecutorOptions {
  /** Users granted (and looked up at the gateway) at the same time within a run (STRATEGY_SCAN_CONCURRENCY). */
  concurrency?: number;
}

/**
 * A grant transaction holds all its users' ledger locks while their gateway totals are set
 * (users / concurrency round trips), and if the instance dies during those calls the gateway is ahead
 * for all of them until their next change or quota sync. 100 keeps both small — about 0.1 s of locks
 * with a gateway answering in 10 ms — while the chunk's statements still cost next to nothing per grant.
 */
const DEFAULT_GRANT_CHUNK = 100;

export interface StrategyRunSummary {
  candidates: number;
  granted: number;
  failed: number;
  /** false when the run stopped early (shutdown, or the strategy was disabled or deleted meanwhile). */
  finished: boolean;
}

/**
 * The grant was refused inside its transaction: the execution is no longer this run's claim (marked
 * stale meanwhile), or the user reached maxExecPerUser meanwhile (another fire granted them).
 */
class NotCompleted extends Error {}

type Grants = Pick<QuotaService, 'grantQuota'>;

export class StrategyExecutor {
  private readonly concurrency: number;
  private readonly chunkGrant: StrategyChunkGrant;

  constructor(
    private readonly orm: MikroORM,
    private readonly candidates: CandidateSource,
    private readonly grants: Grants,
    ledger: Pick<Ledger, 'withUsersLocked' | 'withUserLedger' | 'restoreCommittedTotal'>,
    private readonly gateway: GatewayClient,
    private readonly employees: EmployeeDirectory,
    private readonly settings: { timeZone: string; defaultExpiry: DefaultExpiryRule },
    private readonly clock: Clock,
    options: StrategyExecutorOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.chunkGrant = new StrategyChunkGrant(orm, ledger, gateway, clock, this.concurrency);
  }

  /** The fire this run is: the scheduled instant of a scheduled run, the run itself otherwise. */
  static fireKeyOf(execution: Pick<JobExecution, 'trigger' | 'firedAt' | 'runId'>): string {
    return execution.trigger === 'SCHEDULE' ? `at:${execution.firedAt.toISOString()}` : `run:${execution.runId}`;
  }

  async execute(strategy: QuotaStrategy, execution: JobExecution): Promise<StrategyRunSummary> {
    const logger = execution.logger.child({ strategyId: strategy.id, strategy: strategy.name });
    const parsed = parseCondition(strategy.condition, this.settings.timeZone);
    if (!parsed.ok) {
      // Only data written around the API (or by the old system) can get here.
      throw invalidStoredCondition(strategy, parsed.error.message);
    }
    const now = this.clock.now();
    const single = strategy.type === 'single';
    const run: RunState = {
      strategy,
      single,
      amount: decimalToCents(strategy.amount),
      fireKey: StrategyExecutor.fireKeyOf(execution),
      // SPEC §4: one run, one batch number — every strategy of a scan run shares the run's instant.
      batch: batchNumber(execution.firedAt, this.settings.timeZone),
      expiryDate: grantExpiry(now, this.settings.timeZone, strategy.validityDays ?? null, this.settings.defaultExpiry),
      execution,
      logger,
      summary: { candidates: 0, granted: 0, failed: 0, finished: false },
    };
    await this.releaseStaleClaims(strategy.id);

    const chunks = this.candidates.chunks(parsed.ast, {
      strategyId: strategy.id,
      single,
      maxExecPerUser: strategy.maxExecPerUser,
      fireKey: run.fireKey,
    });
    for await (const chunk of chunks) {
      if (execution.signal.aborted || !(await this.stillEnabled(strategy.id))) return run.summary;
      run.summary.candidates += chunk.length;
      const matched = await this.decide(parsed.ast, chunk, run);
      const claimed = await this.claim(matched, run);
      if (claimed === null) return run.summary; // the strategy was deleted meanwhile
      // After a shutdown signal grantAll grants nothing more and releases the slice's claims.
      for (let start = 0; start < claimed.length; start += DEFAULT_GRANT_CHUNK) {
        await this.grantAll(claimed.slice(start, start + DEFAULT_GRANT_CHUNK), run);
      }
    }
    run.summary.finished = !execution.signal.aborted;
    logger.info(run.summary, 'strategy run finished');
    return run.summary;
  }

  /** Candidates SQL decided, plus the undecided ones the evaluator (with the gateway) finds true. */
  private async decide(ast: ConditionAst, chunk: Candidate[], run: RunState): Promise<string[]> {
    const matched: string[] = [];
    const undecided: CandidateUser[] = [];
    for (const candidate of chunk) {
      if (candidate.decided) matched.push(candidate.userId);
      else undecided.push(candidate.user);
    }
    run.execution.progress.processed(matched.length);
    if (undecided.length === 0) return matched;
    const context = conditionContext(this.orm, this.employees, this.gateway);
    await forEachConcurrently(undecided, this.concurrency, async (user) => {
      if (run.execution.signal.aborted) return;
      const outcome = await evaluateCondition(ast, user, context);
      run.execution.progress.processed();
      if (!outcome.ok) {
        // SPEC §3: skip the user in this run, count them as failed; the next run tries again.
        run.summary.failed += 1;
        run.execution.progress.failed();
        run.logger.warn({ userId: user.id, err: outcome.error }, 'could not evaluate the condition for a user');
      } else if (outcome.matches) {
        matched.push(user.id);
      }
    });
    return matched;
  }

  /**
   * Claims the users for this run in one statement. Returns the claimed users with their execution
   * ids (the others are another run's), or null when the strategy no longer exists.
   */
  private async claim(userIds: string[], run: RunState): Promise<{ userId: string; executionId: string }[] | null> {
    if (userIds.length === 0) return [];
    const now = this.clock.now();
    try {
      const rows = await this.orm.em.fork().execute<{ id: string | number; user_id: string }[]>(
        `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key,
           job_run_id, single, create_time, update_time)
         select ?, claimed.user_id, ?, 'processing', ?, ?, ?, ?, ?, ?, ?
         from jsonb_array_elements_text(?::jsonb) as claimed(user_id)
         on conflict do nothing
         returning id, user_id`,
        [
          run.strategy.id,
          run.batch,
          run.expiryDate,
          centsToDecimalString(run.amount),
          run.fireKey,
          run.execution.runId,
          run.single,
          now,
          now,
          JSON.stringify(userIds),
        ],
      );
      return rows.map((row) => ({ userId: row.user_id, executionId: String(row.id) }));
    } catch (error) {
      // The foreign key refused the rows: the strategy was deleted while this run was going.
      if (isSqlState(error, SqlState.foreignKeyViolation)) return null;
      throw error;
    }
  }

  /** The chunk in one transaction; one user at a time if that transaction could not be written. */
  private async grantAll(claimed: Claim[], run: RunState): Promise<void> {
    const outcome = run.execution.signal.aborted ? null : await this.chunkGrant.grant(run, claimed);
    if (outcome) {
      run.summary.granted += outcome.granted;
      run.summary.failed += outcome.failed;
      if (outcome.granted > 0) run.execution.progress.succeeded(outcome.granted);
      if (outcome.failed > 0) run.execution.progress.failed(outcome.failed);
      return;
    }
    const pending = new Set(claimed.map((claim) => claim.executionId));
    await forEachConcurrently(claimed, this.concurrency, async (claim) => {
      // Shutdown: stop between users; the claims not yet granted are released below.
      if (run.execution.signal.aborted) return;
      pending.delete(claim.executionId);
      await this.grantOne(claim.userId, claim.executionId, run);
    });
    if (pending.size > 0) await releaseClaims(this.orm.em.fork(), [...pending]);
  }

  private async grantOne(userId: string, executionId: string, run: RunState): Promise<void> {
    const { strategy } = run;
    try {
      await this.grants.grantQuota(
        this.orm.em.fork(),
        {
          userId,
          amount: run.amount,
          expiryDate: run.expiryDate,
          strategyId: strategy.id,
          strategyName: strategy.name,
          actor: `strategy:${strategy.id}`,
        },
        { inTransaction: (sql) => this.complete(sql, executionId, run) },
      );
      run.summary.granted += 1;
      run.execution.progress.succeeded();
    } catch (error) {
      // Limit reached: the claim goes, as if never made. Claim lost: it is no longer `processing`, and
      // the release leaves it alone.
      if (error instanceof NotCompleted) return releaseClaims(this.orm.em.fork(), [executionId]);
      run.summary.failed += 1;
      run.execution.progress.failed();
      const reason = describeGrantError(error);
      run.logger.warn({ userId, err: error }, 'grant failed; the user is tried again next run');
      await this.orm.em
        .fork()
        .execute(
          `update quota_execute set status = 'failed', error = ?, update_time = ? where id = ? and status = 'processing'`,
          [reason, this.clock.now(), executionId],
        )
        .catch((markError) => run.logger.error({ err: markError, executionId }, 'could not mark an execution FAILED'));
    }
  }

  /** Inside the grant's transaction, under the user's ledger lock: completeExecutions for one user. */
  private async complete(sql: Sql, executionId: string, run: RunState): Promise<void> {
    const completed = await completeExecutions(sql, run, [executionId], this.clock.now());
    if (completed.size === 0) throw new NotCompleted();
  }

  /**
   * Claims left `processing` by a run that is over (its instance died between claim and grant) would
   * block single strategies for ever: mark them FAILED so they are tried again. A grant still in flight
   * for such a claim cannot complete afterwards (it completes only a `processing` row).
   */
  private async releaseStaleClaims(strategyId: string): Promise<void> {
    await this.orm.em.fork().execute(
      `update quota_execute x set status = 'failed', update_time = ?,
         error = 'INTERRUPTED: the run that claimed this user ended before granting'
       where x.strategy_id = ? and x.status = 'processing'
         and not exists (select 1 from job_run r where r.id = x.job_run_id and r.status in ('QUEUED', 'RUNNING'))`,
      [this.clock.now(), strategyId],
    );
  }

  private async stillEnabled(strategyId: string): Promise<boolean> {
    const rows = await this.orm.em
      .fork()
      .execute<{ status: boolean }[]>('select status from quota_strategy where id = ?', [strategyId]);
    return rows[0]?.status === true;
  }
}

interface RunState {
  strategy: QuotaStrategy;
  single: boolean;
  amount: Cents;
  fireKey: string;
  batch: string;
  expiryDate: Date;
  execution: JobExecution;
  logger: Logger;
  summary: StrategyRunSummary;
}

/** A stored condition that no longer parses (written around the API): the run of that strategy fails. */
function invalidStoredCondition(strategy: QuotaStrategy, problem: string): DomainError {
  return new DomainError(
    ErrorCode.INVALID_CONDITION,
    `strategy ${JSON.stringify(strategy.name)} (${strategy.id}) has an invalid condition: ${problem}`,
  );
}
