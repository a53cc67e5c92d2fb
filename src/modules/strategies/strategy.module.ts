import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../clock.js';
import type { AppConfig } from '../../config.js';
import type { Logger } from '../../logger.js';
import type { EmployeeDirectory } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { IdempotencyKeys } from '../idempotency/idempotency-keys.js';
import type { JobRunner } from '../jobs/job-runner.js';
import type { Ledger } from '../quota/ledger.js';
import type { QuotaService } from '../quota/quota.service.js';
import type { UserDirectory } from '../users/user-directory.js';
import { StrategyService } from './strategy.service.js';
import { CandidateSource } from './strategy-candidates.js';
import { StrategyExecutor, type StrategyExecutorOptions } from './strategy-executor.js';
import { StrategyJobs } from './strategy-jobs.js';
import { StrategyPreviewer } from './strategy-preview.js';

export interface StrategyModuleDeps {
  orm: MikroORM;
  config: Pick<AppConfig, 'timeZone' | 'defaultExpiry'>;
  clock: Clock;
  logger: Logger;
  directory: UserDirectory;
  employees: EmployeeDirectory;
  gateway: GatewayClient;
  runner: JobRunner;
  keys: IdempotencyKeys;
  /** One-user grants (the fallback when a chunk cannot be granted in bulk). */
  quota: Pick<QuotaService, 'grantQuota'>;
  /** Chunks of users are granted in one transaction holding their ledger locks. */
  ledger: Pick<Ledger, 'withUsersLocked' | 'withUserLedger' | 'restoreCommittedTotal'>;
  executor?: StrategyExecutorOptions;
}

/** Builds the strategies module (src/app.ts calls it): the service, with its executor and job handlers. */
export function createStrategyService(deps: StrategyModuleDeps): StrategyService {
  const { orm, config, clock, directory, employees, gateway } = deps;
  const candidates = new CandidateSource(orm, directory, employees.syncEnabled);
  const executor = new StrategyExecutor(
    orm,
    candidates,
    deps.quota,
    deps.ledger,
    gateway,
    employees,
    { timeZone: config.timeZone, defaultExpiry: config.defaultExpiry },
    clock,
    deps.executor,
  );
  const previewer = new StrategyPreviewer(orm, directory, candidates, employees, gateway, config.timeZone);
  return new StrategyService(
    deps.runner,
    new StrategyJobs(orm, executor),
    previewer,
    { timeZone: config.timeZone },
    clock,
    deps.logger.child({ component: 'strategies' }),
    deps.keys,
  );
}
