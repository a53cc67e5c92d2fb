import type { Cron } from 'croner';
import type { Logger } from '../../logger.js';
import { createCronJob, scheduledInstant } from './cron.js';
import type { JobRequest, JobRunner } from './job-runner.js';

/**
 * The cron side of the jobs (SPEC §9): each scheduled job is a croner job in the configured zone
 * whose fire claims a run through the JobRunner with a fire key, so on several instances each fire
 * runs once. Jobs can be added, replaced and removed at any time (strategies change their crons).
 */
export class Scheduler {
  private readonly jobs = new Map<string, { expression: string; cron: Cron }>();
  private stopped = false;

  constructor(
    private readonly runner: JobRunner,
    private readonly timeZone: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Schedules (or reschedules, when the expression changed) a job. `request` builds the run for a
   * fire; the fire key is added here.
   */
  schedule(
    jobKey: string,
    expression: string,
    request: (firedAt: Date) => Omit<JobRequest, 'fireKey' | 'firedAt' | 'trigger'>,
  ): void {
    if (this.stopped) return;
    const existing = this.jobs.get(jobKey);
    if (existing?.expression === expression) return;
    existing?.cron.stop();
    const cron = createCronJob(expression, this.timeZone, async (job) => {
      // The scheduled instant, not the time of the callback: every instance computes the same key.
      const firedAt = scheduledInstant(job);
      try {
        const result = await this.runner.start({
          ...request(firedAt),
          trigger: 'SCHEDULE',
          firedAt,
          fireKey: `${jobKey}@${firedAt.toISOString()}`,
        });
        if (!result.started && result.activeRun) {
          this.logger.info(
            { jobKey, activeRunId: result.activeRun.id },
            'skipped a fire: the previous run is still going',
          );
        }
      } catch (error) {
        this.logger.error({ err: error, jobKey }, 'could not start a scheduled job');
      }
    });
    this.jobs.set(jobKey, { expression, cron });
    this.logger.debug({ jobKey, expression }, 'scheduled');
  }

  unschedule(jobKey: string): void {
    this.jobs.get(jobKey)?.cron.stop();
    this.jobs.delete(jobKey);
  }

  /** Job keys currently scheduled (matching a prefix, e.g. 'strategy:'). */
  scheduledKeys(prefix = ''): string[] {
    return [...this.jobs.keys()].filter((key) => key.startsWith(prefix));
  }

  nextRun(jobKey: string): Date | null {
    return this.jobs.get(jobKey)?.cron.nextRun() ?? null;
  }

  stop(): void {
    this.stopped = true;
    for (const { cron } of this.jobs.values()) cron.stop();
    this.jobs.clear();
  }
}
