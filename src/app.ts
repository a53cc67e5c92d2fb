import { sqlOf } from './db/driver-transaction.js';
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, SystemClock } from './clock.js';
import type { AppConfig } from './config.js';
import { migrate, openDirectoryOrm, openMainOrm, unknownAppliedMigrations } from './db/orm.js';
import { buildApiSchema } from './graphql/schema.js';
import type { Logger } from './logger.js';
import { TokenVerifier } from './modules/auth/token-verifier.js';
import { EmployeeDirectory } from './modules/employees/employee-directory.js';
import { EmployeeSyncService } from './modules/employees/employee-sync.service.js';
import { HrClient } from './modules/employees/hr-client.js';
import { GatewayClient } from './modules/gateway/gateway.client.js';
import { GatewayAdminService } from './modules/gateway/gateway-admin.service.js';
import { HealthService } from './modules/health/health.service.js';
import { IdempotencyKeys } from './modules/idempotency/idempotency-keys.js';
import { createCronJob } from './modules/jobs/cron.js';
import type { ScanTypeName } from './modules/jobs/job-run.entity.js';
import { type JobHandler, JobRunner } from './modules/jobs/job-runner.js';
import { JobsService } from './modules/jobs/jobs.service.js';
import { Scheduler } from './modules/jobs/scheduler.js';
import { Metrics } from './modules/metrics/metrics.js';
import { PermissionService } from './modules/permissions/permission.service.js';
import { PermissionSyncListener } from './modules/permissions/permission-sync-listener.js';
import { Ledger } from './modules/quota/ledger.js';
import { QuotaService } from './modules/quota/quota.service.js';
import { QuotaExpiryService } from './modules/quota/quota-expiry.service.js';
import { QuotaSyncService } from './modules/quota/quota-sync.service.js';
import { createStrategyService } from './modules/strategies/strategy.module.js';
import { SCAN_JOB_KEY } from './modules/strategies/strategy-jobs.js';
import { StrategySchedules } from './modules/strategies/strategy-schedules.js';
import { UserDirectory } from './modules/users/user-directory.js';
import { VoucherCodec } from './modules/vouchers/voucher-codec.js';
import { VouchersService } from './modules/vouchers/vouchers.service.js';
import { createHttpApp, type HttpApp } from './server.js';
import type { Services } from './services.js';

/**
 * The composition root: config in, a running server out. main.ts calls it after embedded mode has
 * filled in what was not configured; the tests call it with their own database and simulator.
 */

export interface StartAppOptions {
  config: AppConfig;
  logger: Logger;
  clock?: Clock;
  /** false = build everything but do not listen (tests that only need the services). */
  listen?: boolean;
  /** false = no cron jobs (tests that trigger jobs by hand); manual triggers still work. */
  schedule?: boolean;
}

export interface RunningApp {
  services: Services;
  http: HttpApp;
  /** http://host:port/graphql, once listening. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

export function packageVersion(): string {
  const file = new URL('../package.json', import.meta.url);
  // dist/src/app.js sits one level deeper than src/app.ts.
  for (const candidate of [file, new URL('../../package.json', import.meta.url)]) {
    try {
      const parsed = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'quota-manager' && parsed.version) return parsed.version;
    } catch {
      // try the next place
    }
  }
  return '0.0.0';
}

export async function startApp(options: StartAppOptions): Promise<RunningApp> {
  const { config, logger } = options;
  if (!config.databaseUrl) throw new Error('startApp needs a database URL (embedded mode fills it in)');
  if (!config.gateway.url) throw new Error('startApp needs a gateway URL (embedded mode fills it in)');
  const clock = options.clock ?? new SystemClock(config.timeZone);

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error) => logger.warn({ err: error }, 'close failed'));
  };

  try {
    const orm = await openMainOrm(config.databaseUrl, logger);
    closers.push(() => orm.close(true));
    const applied = await migrate(orm);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
    // Not a refusal: rolling back to an older image on a schema a newer one extended is how a bad
    // release is undone, and works while those migrations only added. But it must be visible.
    const unknown = await unknownAppliedMigrations(orm);
    if (unknown.length > 0) {
      logger.warn(
        { migrations: unknown },
        'the database has migrations this version does not know (applied by a newer version): running on a newer schema',
      );
    }

    let directoryOrm: MikroORM = orm;
    if (config.authDatabaseUrl) {
      directoryOrm = await openDirectoryOrm(config.authDatabaseUrl, logger);
      const opened = directoryOrm;
      closers.push(() => opened.close(true));
    }

    const metrics = new Metrics({ defaultMetrics: config.metricsEnabled });
    // With METRICS_ENABLED=false nothing reads the registry (no /metrics route), so nothing records into it.
    const recording = config.metricsEnabled ? metrics : undefined;
    const gateway = new GatewayClient(
      {
        baseUrl: config.gateway.url,
        adminPath: config.gateway.adminPath,
        authHeader: config.gateway.authHeader,
        authValue: config.gateway.authValue,
        timeoutMs: config.gateway.timeoutMs,
        retries: config.gateway.retries,
        retryBaseDelayMs: config.gateway.retryBaseDelayMs,
      },
      logger.child({ component: 'gateway-client' }),
      { onCall: recording?.onGatewayCall },
    );
    closers.push(async () => gateway.close());

    const directory = new UserDirectory(directoryOrm, !config.authDatabaseUrl);
    await directory.assertReadable();
    const employees = new EmployeeDirectory(config, directory);
    const hrClient = new HrClient({ timeoutMs: config.hr.timeoutMs }, logger.child({ component: 'hr-client' }));
    closers.push(async () => hrClient.close());
    const employeeSync = new EmployeeSyncService(config, hrClient);
    const permissions = new PermissionService({
      orm,
      gateway,
      employees,
      directory,
      clock,
      logger: logger.child({ component: 'permissions' }),
    });
    employeeSync.addChangeListener(new PermissionSyncListener(permissions));
    const health = new HealthService(orm, gateway, packageVersion(), logger);
    // Stops the probe and closes the check's own connection, after HTTP drained, before the pool closes.
    closers.push(() => health.stop());
    const jobRunner = new JobRunner(orm, logger.child({ component: 'jobs' }), {
      staleAfterMs: config.jobStaleAfterMs,
      heartbeatMs: Math.min(5_000, config.jobStaleAfterMs / 5),
      onFinished: recording?.onJobFinished,
      clock,
    });
    const scheduler = new Scheduler(jobRunner, config.timeZone, logger.child({ component: 'scheduler' }));
    const quotaLogger = logger.child({ component: 'quota' });
    const ledger = new Ledger(gateway, clock, quotaLogger, recording?.ledgerObserver);
    const idempotencyKeys = new IdempotencyKeys(clock, config.idempotencyKeyRetentionHours);
    const quota = new QuotaService(ledger, gateway, directory, config, clock, quotaLogger, idempotencyKeys);
    const services: Services = {
      config,
      clock,
      logger,
      orm,
      gateway,
      directory,
      employees,
      employeeSync,
      health,
      metrics,
      gatewayAdmin: new GatewayAdminService(gateway, logger.child({ component: 'gateway-admin' })),
      permissions,
      jobs: new JobsService(jobRunner, idempotencyKeys),
      idempotencyKeys,
      scheduler,
      ledger,
      quota,
      quotaExpiry: new QuotaExpiryService(orm, ledger, gateway, clock, quotaLogger),
      quotaSync: new QuotaSyncService(orm, ledger, gateway, quotaLogger, recording?.syncObserver),
      strategies: createStrategyService({
        orm,
        config,
        clock,
        logger,
        directory,
        employees,
        gateway,
        runner: jobRunner,
        keys: idempotencyKeys,
        quota,
        ledger,
        executor: { concurrency: config.strategyScanConcurrency },
      }),
      vouchers: new VouchersService(
        ledger,
        gateway,
        directory,
        employees,
        voucherCodec(config),
        clock,
        logger.child({ component: 'vouchers' }),
        idempotencyKeys,
      ),
    };

    const verifier = new TokenVerifier(config.auth, logger.child({ component: 'auth' }));
    const schema = await buildApiSchema();
    const http = await createHttpApp({ config, schema, services, verifier, logger });
    // After HTTP has drained (closers run in reverse): a run a draining request claimed after the
    // runner stopped is recorded as not started before the database closes.
    closers.push(() => jobRunner.settle(config.shutdownTimeoutMs));
    closers.push(() => http.close(config.shutdownTimeoutMs));
    // Closed before HTTP drains (closers run in reverse): schedules stop, running jobs reach a safe point.
    closers.push(async () => {
      scheduler.stop();
      await jobRunner.stop(config.shutdownTimeoutMs);
    });
    await jobRunner.reapStaleRuns();
    registerScans(services);
    if (options.schedule !== false) closers.push(await startSchedules(services));

    let port = 0;
    if (options.listen !== false) {
      port = await http.listen(config.port, config.host);
      health.startGatewayProbe();
    }
    // 127.0.0.1 and the wildcard addresses are all reachable as localhost, the name people type.
    const host = ['0.0.0.0', '::', '127.0.0.1'].includes(config.host) ? 'localhost' : config.host;

    let stopped = false;
    return {
      services,
      http,
      port,
      url: `http://${host}:${port}/graphql`,
      async stop() {
        if (stopped) return;
        stopped = true;
        health.startDraining();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** Job keys of the scans (one active exclusive run per key, across instances). */
const EXPIRE_JOB_KEY = 'expire';
const SYNC_QUOTAS_JOB_KEY = 'sync-quotas';
const EMPLOYEE_SYNC_JOB_KEY = 'employee-sync';
const EXPIRE_CRON = '0 0 0 1 * *';
const EMPLOYEE_SYNC_CRON = '0 0 1 * * *';
const IDEMPOTENCY_PURGE_CRON = '0 17 * * * *';

/** The handlers behind triggerScan(type) and the schedules (SPEC §9): the same for both. */
function scanHandlers(services: Services): Record<ScanTypeName, JobHandler> {
  const expireQuotas: JobHandler = async (execution) => {
    const result = await services.quotaExpiry.runMonthlyExpiry({
      progress: execution.progress,
      signal: execution.signal,
    });
    if (result.failures.length > 0) {
      execution.logger.warn({ failures: result.failures }, 'monthly expiry left users for the next run');
    }
  };
  const syncQuotas: JobHandler = async (execution) => {
    const result = await services.quotaSync.syncQuotas({ progress: execution.progress, signal: execution.signal });
    execution.logger.info({ corrected: result.corrected, failures: result.failures }, 'quota sync finished');
  };
  const employeeSync: JobHandler = async (execution) => {
    const result = await services.employeeSync.sync(services.orm, execution.logger, { signal: execution.signal });
    execution.progress.processed(result.processed);
    execution.progress.succeeded(result.succeeded);
    execution.progress.failed(result.failed);
  };
  return {
    STRATEGY: services.strategies.jobs.scan,
    EXPIRE_QUOTAS: expireQuotas,
    SYNC_QUOTAS: syncQuotas,
    EMPLOYEE_SYNC: employeeSync,
  };
}

const SCAN_JOB_KEYS: Record<ScanTypeName, string> = {
  STRATEGY: SCAN_JOB_KEY,
  EXPIRE_QUOTAS: EXPIRE_JOB_KEY,
  SYNC_QUOTAS: SYNC_QUOTAS_JOB_KEY,
  EMPLOYEE_SYNC: EMPLOYEE_SYNC_JOB_KEY,
};

/** triggerScan(type) for every scan type, schedules on or off. */
function registerScans(services: Services): void {
  const handlers = scanHandlers(services);
  for (const type of Object.keys(handlers) as ScanTypeName[]) {
    services.jobs.registerScan(type, { jobKey: SCAN_JOB_KEYS[type], handler: handlers[type] });
  }
}

/**
 * The scheduled jobs of SPEC §9, on this instance's scheduler (every instance schedules everything;
 * the job runner's claim lets one of them run each fire): the single-strategy scan on SCAN_CRON, one
 * job per enabled periodic strategy (kept in step with changes by StrategySchedules), the monthly
 * expiry, quota sync when QUOTA_SYNC_CRON is set, and employee sync — daily when enabled, and once now
 * when the mirror is still empty.
 * Returns what stops the parts that are not the scheduler's own jobs.
 */
async function startSchedules(services: Services): Promise<() => Promise<void>> {
  const { scheduler, config } = services;
  const handlers = scanHandlers(services);
  const scan = (type: ScanTypeName) => () => ({
    type,
    jobKey: SCAN_JOB_KEYS[type],
    exclusive: true,
    handler: handlers[type],
  });
  scheduler.schedule(SCAN_JOB_KEY, config.scanCron, scan('STRATEGY'));
  scheduler.schedule(EXPIRE_JOB_KEY, EXPIRE_CRON, scan('EXPIRE_QUOTAS'));
  if (config.quotaSyncCron) scheduler.schedule(SYNC_QUOTAS_JOB_KEY, config.quotaSyncCron, scan('SYNC_QUOTAS'));

  const strategySchedules = new StrategySchedules(
    services.orm,
    scheduler,
    services.strategies.jobs,
    services.logger.child({ component: 'strategy-schedules' }),
  );
  services.strategies.onChange(() => strategySchedules.resync());
  await strategySchedules.start();

  if (config.hr.enabled) {
    scheduler.schedule(EMPLOYEE_SYNC_JOB_KEY, EMPLOYEE_SYNC_CRON, scan('EMPLOYEE_SYNC'));
    if (await services.employeeSync.isMirrorEmpty(services.orm.em.fork())) {
      await services.jobs.runner.start({ ...scan('EMPLOYEE_SYNC')(), trigger: 'STARTUP' });
    }
  }
  // Forgetting expired idempotency keys is a plain delete, safe on every instance at once: no job run.
  const keyPurge = createCronJob(IDEMPOTENCY_PURGE_CRON, config.timeZone, async () => {
    try {
      const purged = await services.idempotencyKeys.purgeExpired(sqlOf(services.orm.em.fork()));
      if (purged > 0) services.logger.info({ purged }, 'forgot expired idempotency keys');
    } catch (error) {
      services.logger.warn({ err: error }, 'could not purge expired idempotency keys; trying again next hour');
    }
  });
  services.logger.debug({ jobs: scheduler.scheduledKeys() }, 'schedules started');
  return async () => {
    keyPurge.stop();
    await strategySchedules.stop();
  };
}

/** The voucher keys (SPEC §5): embedded mode generates the signing key; otherwise config requires it. */
function voucherCodec(config: AppConfig): VoucherCodec {
  if (!config.voucherSigningKey) throw new Error('startApp needs VOUCHER_SIGNING_KEY (embedded mode fills it in)');
  return new VoucherCodec(
    { signingKey: config.voucherSigningKey, previousKeys: config.voucherPreviousKeys },
    config.timeZone,
  );
}
