import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../../logger.js';
import type { Scheduler } from '../jobs/scheduler.js';
import { type StrategyJobs, strategyJobKey } from './strategy-jobs.js';

/**
 * Keeps one cron job per enabled PERIODIC strategy (SPEC §4, §9). This instance's own changes resync
 * at once (the mutation awaits it); changes made by another instance are noticed by polling a cheap
 * fingerprint of the scheduling-relevant columns every few seconds. Which instance runs a fire is
 * decided by the job runner's claim, so every instance may schedule every strategy.
 */

interface PeriodicRow {
  id: string | number;
  periodic_expr: string | null;
}

const PREFIX = 'strategy:';

export class StrategySchedules {
  private fingerprint: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly scheduler: Scheduler,
    private readonly jobs: StrategyJobs,
    private readonly logger: Logger,
    private readonly pollMs = 3_000,
  ) {}

  async start(): Promise<void> {
    await this.resync();
    this.timer = setInterval(() => {
      this.poll().catch((error) => this.logger.warn({ err: error }, 'could not check strategies for schedule changes'));
    }, this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Re-reads every periodic strategy and (re)schedules, reschedules or drops their jobs. Serialised. */
  resync(): Promise<void> {
    const next = this.queue.then(() => this.apply());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    if ((await this.readFingerprint()) !== this.fingerprint) await this.resync();
  }

  /** Changes whenever a periodic strategy is created, deleted, enabled, disabled or gets another cron. */
  private async readFingerprint(): Promise<string> {
    const rows = await this.orm.em.fork().execute<{ fingerprint: string }[]>(
      `select count(*) || ':' || md5(coalesce(string_agg(id || ':' || status || ':' || coalesce(periodic_expr, ''), ',' order by id), '')) as fingerprint
       from quota_strategy where type = 'periodic'`,
    );
    return rows[0]?.fingerprint ?? '';
  }

  private async apply(): Promise<void> {
    if (this.stopped) return;
    const fingerprint = await this.readFingerprint();
    const rows = await this.orm.em
      .fork()
      .execute<PeriodicRow[]>(
        `select id, periodic_expr from quota_strategy where type = 'periodic' and status order by id`,
      );
    const wanted = new Set<string>();
    for (const row of rows) {
      const id = String(row.id);
      const jobKey = strategyJobKey(id);
      if (!row.periodic_expr) continue;
      try {
        this.scheduler.schedule(jobKey, row.periodic_expr, () => ({
          type: 'STRATEGY',
          jobKey,
          exclusive: true,
          strategyId: id,
          handler: this.jobs.periodicFire(id),
        }));
        wanted.add(jobKey);
      } catch (error) {
        // Only a cron written around the API can fail here; the other strategies still run.
        this.logger.error({ err: error, strategyId: id }, 'could not schedule a periodic strategy');
      }
    }
    for (const jobKey of this.scheduler.scheduledKeys(PREFIX)) {
      if (!wanted.has(jobKey)) this.scheduler.unschedule(jobKey);
    }
    this.fingerprint = fingerprint;
  }
}
