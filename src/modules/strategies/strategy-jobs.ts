import type { MikroORM } from '@mikro-orm/postgresql';
import { DomainError, ErrorCode } from '../../errors.js';
import type { JobExecution, JobHandler } from '../jobs/job-runner.js';
import { QuotaStrategy } from './strategy.entity.js';
import type { StrategyExecutor } from './strategy-executor.js';

/**
 * The runs of strategies (SPEC §4, §9), each one JobRun of type STRATEGY:
 * - the scan (job key `scan`): every enabled SINGLE strategy, on SCAN_CRON and `triggerScan(STRATEGY)`;
 * - a fire of a PERIODIC strategy (job key `strategy:<id>`), on its own cron;
 * - `runStrategy(id)`: one strategy of either type, a non-exclusive run of its own.
 * A strategy that fails as a whole (e.g. a stored condition that no longer parses) does not stop the
 * scan; the run ends FAILED with the first such error after the others have run.
 */

export const SCAN_JOB_KEY = 'scan';

export function strategyJobKey(strategyId: string): string {
  return `strategy:${strategyId}`;
}

export class StrategyJobs {
  constructor(
    private readonly orm: MikroORM,
    private readonly executor: StrategyExecutor,
  ) {}

  /** The single-strategy scan. */
  readonly scan: JobHandler = async (execution) => {
    const strategies = await this.orm.em
      .fork()
      .find(QuotaStrategy, { type: 'single', status: true }, { orderBy: { id: 'asc' } });
    let firstError: unknown = null;
    for (const strategy of strategies) {
      if (execution.signal.aborted) return;
      try {
        await this.executor.execute(strategy, execution);
      } catch (error) {
        execution.logger.error({ err: error, strategyId: strategy.id }, 'a strategy failed in the scan');
        firstError ??= error;
      }
    }
    if (firstError) throw firstError;
  };

  /** A scheduled fire of a periodic strategy: nothing when it was disabled, deleted or retyped meanwhile. */
  periodicFire(strategyId: string): JobHandler {
    return async (execution) => {
      const strategy = await this.load(strategyId);
      if (!strategy?.status || strategy.type !== 'periodic') {
        execution.logger.info({ strategyId }, 'skipped a fire: the strategy is no longer an enabled periodic one');
        return;
      }
      await this.executor.execute(strategy, execution);
    };
  }

  /** runStrategy(id): the strategy as it is when the run starts. */
  manualRun(strategyId: string): JobHandler {
    return async (execution: JobExecution) => {
      const strategy = await this.load(strategyId);
      if (!strategy)
        throw new DomainError(ErrorCode.NOT_FOUND, `strategy ${strategyId} was deleted before its run started`);
      if (!strategy.status) {
        throw new DomainError(ErrorCode.BAD_USER_INPUT, `strategy ${strategyId} was disabled before its run started`);
      }
      await this.executor.execute(strategy, execution);
    };
  }

  private load(strategyId: string): Promise<QuotaStrategy | null> {
    return this.orm.em.fork().findOne(QuotaStrategy, { id: strategyId });
  }
}
