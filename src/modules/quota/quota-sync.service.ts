import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../../logger.js';
import { centsToAmount } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { Ledger } from './ledger.js';
import {
  describeError,
  type LedgerJobCounters,
  type LedgerJobProgress,
  LedgerJobTally,
  userRowsInChunks,
} from './ledger-user-scan.js';

export interface SyncRunOptions {
  progress?: LedgerJobProgress;
  signal?: AbortSignal;
  chunkSize?: number;
}

/** Told about each corrected user after the correction committed (the metrics hook); must not throw. */
export interface QuotaSyncObserver {
  onCorrection(userId: string): void;
}

export interface SyncRunResult extends LedgerJobCounters {
  /** Users whose gateway total differed from Σ VALID and was set to it. */
  corrected: number;
}

/**
 * Quota sync (SPEC §5 "Sync quotas"): sets the gateway total of every user whose total differs from
 * Σ VALID, compared and written under the user's ledger lock so no concurrent change slips between.
 *
 * Which users: everyone the ledger knows (a batch of any status, or an audit), not only users with
 * VALID batches as the spec's sentence reads. A user whose last batches expired, or were deducted or
 * transferred away, should have a gateway total of 0; if that push failed, only this wider scan can
 * repair it (the expiry job relies on sync for exactly that case).
 */
export class QuotaSyncService {
  constructor(
    private readonly orm: MikroORM,
    private readonly ledger: Ledger,
    private readonly gateway: GatewayClient,
    private readonly logger: Logger,
    private readonly observer?: QuotaSyncObserver,
  ) {}

  async syncQuotas(options: SyncRunOptions = {}): Promise<SyncRunResult> {
    const tally = new LedgerJobTally(options.progress);
    let corrected = 0;
    const chunks = userRowsInChunks(
      this.orm.em.fork(),
      // PostgreSQL pushes `user_id > ?` down into both branches of the union (each uses its index).
      `select user_id from (select user_id from quota union select user_id from quota_audit) known
        where user_id > ? order by user_id limit ?`,
      [],
      options.chunkSize,
    );
    for await (const chunk of chunks) {
      for (const { user_id: userId } of chunk) {
        if (options.signal?.aborted) return { ...tally.counters, corrected };
        try {
          const fixed = await this.ledger.withUserLedger(this.orm.em.fork(), userId, async (ledger) => {
            const [expected, actual] = await Promise.all([ledger.validTotal(), this.gateway.getTotal(userId)]);
            if (expected === actual) return false;
            await ledger.pushTotal();
            this.logger.info(
              { userId, gatewayTotal: centsToAmount(actual), ledgerTotal: centsToAmount(expected) },
              'gateway total corrected to the ledger',
            );
            return true;
          });
          if (fixed) {
            corrected += 1;
            this.observer?.onCorrection(userId);
          }
          tally.succeeded();
        } catch (error) {
          tally.failed(userId, describeError(error));
          this.logger.warn({ userId, err: error }, 'quota sync failed for a user');
        }
      }
    }
    return { ...tally.counters, corrected };
  }
}
