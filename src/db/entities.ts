import { EmployeeDepartment } from '../modules/employees/employee-department.entity.js';
import { JobRun } from '../modules/jobs/job-run.entity.js';
import {
  EffectiveModelPermission,
  EffectiveQuotaCheck,
  EffectiveStarCheck,
} from '../modules/permissions/effective-permission.entity.js';
import { PermissionAuditEntry } from '../modules/permissions/permission-audit.entity.js';
import {
  ModelWhitelistSetting,
  QuotaCheckSetting,
  StarCheckSetting,
} from '../modules/permissions/permission-setting.entity.js';
import { MonthlyUsageRow } from '../modules/quota/monthly-usage.entity.js';
import { QuotaAuditRow } from '../modules/quota/quota-audit.entity.js';
import { QuotaBatchRow } from '../modules/quota/quota-batch.entity.js';
import { QuotaStrategy } from '../modules/strategies/strategy.entity.js';
import { QuotaExecution } from '../modules/strategies/strategy-execution.entity.js';
import { AuthUser } from '../modules/users/auth-user.entity.js';
import { VoucherRedemption } from '../modules/vouchers/voucher-redemption.entity.js';

/**
 * Every entity of the main database, as class references (no folder discovery: it behaves the
 * same under tsc output, tsx and vitest). Modules add theirs here.
 */
export const mainEntities = [
  EmployeeDepartment,
  JobRun,
  AuthUser,
  QuotaBatchRow,
  QuotaAuditRow,
  MonthlyUsageRow,
  VoucherRedemption,
  ModelWhitelistSetting,
  StarCheckSetting,
  QuotaCheckSetting,
  EffectiveModelPermission,
  EffectiveStarCheck,
  EffectiveQuotaCheck,
  PermissionAuditEntry,
  QuotaStrategy,
  QuotaExecution,
];

/** The entities of the user directory, when it lives in its own database (AUTH_DATABASE_URL). */
export const directoryEntities = [AuthUser];
