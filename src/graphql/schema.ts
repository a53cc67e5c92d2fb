import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { buildSchema, type NonEmptyArray } from 'type-graphql';
import { EmployeesResolver } from '../modules/employees/employees.resolver.js';
import { GatewayAdminResolver } from '../modules/gateway/gateway-admin.resolver.js';
import { HealthResolver } from '../modules/health/health.resolver.js';
import { JobsResolver } from '../modules/jobs/jobs.resolver.js';
import { PermissionResolver } from '../modules/permissions/permission.resolver.js';
import { QuotaResolver, ViewerQuotaResolver } from '../modules/quota/quota.resolver.js';
import { StrategyResolver } from '../modules/strategies/strategy.resolver.js';
import { ViewerResolver } from '../modules/users/viewer.resolver.js';
import { VouchersResolver } from '../modules/vouchers/vouchers.resolver.js';
import { authChecker } from './auth-checker.js';
import { PageInfo } from './pagination.js';

/** Every resolver of the API. Modules add theirs here. */
// biome-ignore lint/complexity/noBannedTypes: type-graphql takes resolver classes as Function.
const resolvers: NonEmptyArray<Function> = [
  HealthResolver,
  ViewerResolver,
  GatewayAdminResolver,
  JobsResolver,
  EmployeesResolver,
  PermissionResolver,
  VouchersResolver,
  QuotaResolver,
  ViewerQuotaResolver,
  StrategyResolver,
];

let built: Promise<GraphQLSchema> | null = null;

/** Built once per process: type-graphql's metadata is global, and building is not free. */
export function buildApiSchema(): Promise<GraphQLSchema> {
  // PageInfo is listed so the contract's paging type is in the schema before any list uses it.
  built ??= buildSchema({ resolvers, authChecker, validate: false, orphanedTypes: [PageInfo] });
  return built;
}

/** The SDL checked in as schema.graphql: sorted, so diffs stay small. */
export async function printApiSchema(): Promise<string> {
  const schema = await buildApiSchema();
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
