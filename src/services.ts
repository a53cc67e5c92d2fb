import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from './clock.js';
import type { AppConfig } from './config.js';
import type { Logger } from './logger.js';
import type { EmployeeDirectory } from './modules/employees/employee-directory.js';
import type { EmployeeSyncService } from './modules/employees/employee-sync.service.js';
import type { GatewayClient } from './modules/gateway/gateway.client.js';
import type { GatewayAdminService } from './modules/gateway/gateway-admin.service.js';
import type { HealthService } from './modules/health/health.service.js';
import type { IdempotencyKeys } from './modules/idempotency/idempotency-keys.js';
import type { JobsService } from './modules/jobs/jobs.service.js';
import type { Scheduler } from './modules/jobs/scheduler.js';
import type { Metrics } from './modules/metrics/metrics.js';
import type { PermissionService } from './modules/permissions/permission.service.js';
import type { Ledger } from './modules/quota/ledger.js';
import type { QuotaService } from './modules/quota/quota.service.js';
import type { QuotaExpiryService } from './modules/quota/quota-expiry.service.js';
import type { QuotaSyncService } from './modules/quota/quota-sync.service.js';
import type { StrategyService } from './modules/strategies/strategy.service.js';
import type { UserDirectory } from './modules/users/user-directory.js';
import type { VouchersService } from './modules/vouchers/vouchers.service.js';

/**
 * The services of one running server, built once in src/app.ts and handed to resolvers through the
 * request context and to jobs directly. Stateless apart from configuration: each call gets the
 * EntityManager of its request or job.
 */
export interface Services {
  config: AppConfig;
  clock: Clock;
  logger: Logger;
  orm: MikroORM;
  gateway: GatewayClient;
  directory: UserDirectory;
  /** The HR mirror: employee keys, departments (SPEC §6, §7). */
  employees: EmployeeDirectory;
  /** HR → mirror reconciliation (SPEC §7); the scheduler runs `sync`, permissions listens with addChangeListener. */
  employeeSync: EmployeeSyncService;
  health: HealthService;
  /** Prometheus metrics of this server (GET /metrics); its hooks are wired in src/app.ts. */
  metrics: Metrics;
  gatewayAdmin: GatewayAdminService;
  /** Whitelists, switches, effective values and their pushes (SPEC §6). */
  permissions: PermissionService;
  /** Idempotency keys of transferOut, deductQuota, runStrategy, triggerScan (kept IDEMPOTENCY_KEY_RETENTION_HOURS). */
  idempotencyKeys: IdempotencyKeys;
  /** triggerScan, jobRun(s); modules register their scans on it. */
  jobs: JobsService;
  /** Cron jobs in the configured zone; modules schedule theirs on it. */
  scheduler: Scheduler;
  /** The ledger core: every change of a user's batches (withUserLedger), used by grants, vouchers, expiry. */
  ledger: Ledger;
  /** Grants, the quota view, deductions, audits, monthly usage (SPEC §5). */
  quota: QuotaService;
  /** Monthly expiry (SPEC §5); the scheduler runs runMonthlyExpiry. */
  quotaExpiry: QuotaExpiryService;
  /** Quota sync (SPEC §5): gateway total := Σ VALID where they differ. */
  quotaSync: QuotaSyncService;
  /** Strategies: CRUD, condition/cron helpers, executions, runStrategy (SPEC §3, §4). */
  strategies: StrategyService;
  /** transferOut / transferIn / voucher (SPEC §5). */
  vouchers: VouchersService;
}
