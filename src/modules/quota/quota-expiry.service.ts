import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, previousYearMonth } from '../../clock.js';
import type { EntityManager } from '../../db/orm.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToAmount, centsToDecimalString } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { isGatewayError } from '../gateway/gateway.errors.js';
import { planExpirySettlement } from './expiry-settlement.js';
import type { Ledger } from './ledger.js';
import {
  describeError,
  type LedgerJobCounters,
  type LedgerJobProgress,
  LedgerJobTally,
  userRowsInChunks,
} from './ledger-user-scan.js';

export interface ExpiryRunOptions {
  /** Defaults to the server's clock; the run's "now" is read once at the start. */
  clock?: Clock;
  progress?: LedgerJobProgress;
  /** Aborted = stop before the next user (shutdown). */
  signal?: AbortSignal;
  chunkSize?: number;
}

export interface ExpiryRunResult extends LedgerJobCounters {
  /** `YYYY-MM` the usage was recorded for (last month, configured zone). */
  yearMonth: string;
  usageRecorded: number;
  /** Users whose expired batches were settled (committed), including those whose total push failed. */
  settledUsers: number;
}

type SettlementOutcome = { settled: false } | { settled: true; totalPushError: string | null };

/**
 * Monthly expiry (SPEC §5, "Monthly expiry" 1–3): for every user with VALID batches, record last
 * month's gateway usage, then settle the batches that have expired. Users are walked in keyset
 * chunks; each user is one transaction under the ledger lock, all or nothing.
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
    const clock = options.clock ?? this.clock;
    const now = clock.now();
    const yearMonth = previousYearMonth(now, clock.timeZone);
    const tally = new LedgerJobTally(options.progress);
    let usageRecorded = 0;
    let settledUsers = 0;

    const chunks = userRowsInChunks<{ user_id: string; has_expired: boolean }>(
      this.orm.em.fork(),
      `select user_id, bool_or(expiry_date < ?) as has_expired
         from quota where status = 'VALID' and user_id > ?
         group by user_id order by user_id limit ?`,
      [now],
      options.chunkSize,
    );
    for await (const chunk of chunks) {
      for (const { user_id: userId, has_expired: hasExpired } of chunk) {
        if (options.signal?.aborted) return { ...tally.counters, yearMonth, usageRecorded, settledUsers };
        const em = this.orm.em.fork();
        try {
          if (await this.recordUsage(em, userId, yearMonth, now)) usageRecorded += 1;
          const outcome = hasExpired ? await this.settleUser(em, userId, now) : { settled: false as const };
          if (outcome.settled) settledUsers += 1;
          if (outcome.settled && outcome.totalPushError !== null) {
            tally.failed(userId, `settled, but the gateway total was not set: ${outcome.totalPushError}`);
          } else {
            tally.succeeded();
          }
        } catch (error) {
          tally.failed(userId, describeError(error));
          this.logger.warn({ userId, err: error }, 'monthly expiry failed for a user; left for the next run');
        }
      }
    }
    const result = { ...tally.counters, yearMonth, usageRecorded, settledUsers };
    this.logger.info(
      { processed: result.processed, succeeded: result.succeeded, failed: result.failed, usageRecorded, settledUsers },
      'monthly expiry finished',
    );
    return result;
  }

  /**
   * Step 1: last month's usage, once per user and month. It is committed on its own, before and
   * independently of the settlement, so a settlement that fails (and resets nothing) cannot lose it.
   * The first record of a month wins (`do nothing` on conflict): it was taken closest to the month
   * boundary, and a later re-run would include consumption of the new month.
   */
  private async recordUsage(em: EntityManager, userId: string, yearMonth: string, now: Date): Promise<boolean> {
    const used = await this.gateway.getUsed(userId);
    if (used <= 0) return false;
    const rows = await em.execute(
      `insert into monthly_quota_usage (user_id, year_month, used_quota, record_time, create_time)
       values (?, ?, ?, ?, ?)
       on conflict (user_id, year_month) do nothing
       returning id`,
      [userId, yearMonth, centsToDecimalString(used), now, now],
    );
    return rows.length > 0;
  }

  /**
   * Step 2 for one user, inside the user's ledger lock.
   *
   * Order of the one non-idempotent call: the settlement (expired batches, reduced batches, the EXPIRE
   * audit) is written first but not committed; then the gateway's used is reset with a delta of −used.
   * - If that delta fails, ambiguous or not, we throw: the transaction rolls back and the user is
   *   untouched, left for the next run. The client never retries a delta that may have arrived; an
   *   ambiguous failure may have reset `used` after all, which the next run cannot tell apart from no
   *   consumption, so it is logged for a human to look at.
   * - Once the delta succeeded, consumption is reset and the settlement MUST commit (rolling back would
   *   count that consumption a second time). The absolute total is pushed next; if that push fails, we
   *   still commit and report the user as failed: quota sync (SYNC_QUOTAS) sets the total to Σ VALID.
   */
  private async settleUser(em: EntityManager, userId: string, now: Date): Promise<SettlementOutcome> {
    let usedWasReset: Cents | null = null;
    try {
      return await this.ledger.withUserLedger(em, userId, async (ledger): Promise<SettlementOutcome> => {
        const batches = await ledger.validBatches();
        const used = await this.gateway.getUsed(userId);
        const plan = planExpirySettlement(batches, used, now);
        // Another instance (or an earlier run) settled this user since the scan looked.
        if (!plan) return { settled: false };

        for (const { batch } of plan.expired) await ledger.expire(batch.id);
        for (const { batch, consumed } of plan.settled) await ledger.debit(batch.id, consumed);
        await ledger.audit({
          operation: 'EXPIRE',
          amount: plan.after - plan.before,
          expiryDate: plan.earliestExpiry,
          items: plan.items,
          reason: expiryReason(plan.expired.length, plan.settled, plan.usedReset),
          actor: 'job:expire-quotas',
        });

        if (plan.usedReset > 0) {
          try {
            await this.gateway.addUsed(userId, -plan.usedReset);
          } catch (error) {
            if (isGatewayError(error) && error.ambiguous) {
              this.logger.warn(
                { userId, used: centsToAmount(plan.usedReset), err: error },
                'resetting gateway used failed ambiguously: it may have been applied; check this user before the next run',
              );
            }
            throw error;
          }
          usedWasReset = plan.usedReset;
        }

        try {
          await ledger.pushTotal();
          return { settled: true, totalPushError: null };
        } catch (error) {
          this.logger.error(
            { userId, err: error },
            'expiry settled but the gateway total could not be set; SYNC_QUOTAS will repair it',
          );
          return { settled: true, totalPushError: describeError(error) };
        }
      });
    } catch (error) {
      if (usedWasReset !== null) {
        // The commit itself failed after the gateway reset `used`: nothing in our power undoes that.
        this.logger.error(
          { userId, used: centsToAmount(usedWasReset), err: error },
          'gateway used was reset but the expiry settlement did not commit: this user needs manual repair',
        );
      }
      throw error;
    }
  }
}

function expiryReason(expiredCount: number, settled: { consumed: Cents }[], usedReset: Cents): string {
  const settledAmount = settled.reduce((sum, entry) => sum + entry.consumed, 0);
  const parts = [`monthly expiry: ${expiredCount} batch${expiredCount === 1 ? '' : 'es'} expired`];
  if (settledAmount > 0) parts.push(`${centsToAmount(settledAmount)} of consumption settled into valid batches`);
  if (usedReset > 0) parts.push(`gateway used ${centsToAmount(usedReset)} reset to 0`);
  return parts.join('; ');
}
