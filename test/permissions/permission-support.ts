import { silentLogger } from '../../src/logger.js';
import type { HrEmployeeRecord } from '../../src/modules/employees/hr-fixture.js';
import type { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import type { HrTestContext } from '../employees/hr-support.js';
import { errorCode, type GraphqlResponse, type TestApp } from '../support/app.js';

/** Every table the permissions module writes. */
export const PERMISSION_TABLES = [
  'model_whitelist',
  'star_check_settings',
  'quota_check_settings',
  'effective_permissions',
  'effective_star_check_settings',
  'effective_quota_check_settings',
  'permission_audit',
] as const;

export interface EmployeeSeed {
  number: string;
  name?: string;
  path: string[];
}

/** Employees straight into the HR mirror (as employee sync would have written them). */
export async function insertEmployees(t: TestApp, employees: EmployeeSeed[]): Promise<void> {
  const rows = employees.map((employee) => ({
    employee_number: employee.number,
    username: employee.name ?? `Employee ${employee.number}`,
    path: employee.path.join(','),
  }));
  await t.app.services.orm.em.fork().execute(
    `insert into employee_department (employee_number, username, dept_full_level_names)
     select x.employee_number, x.username, x.path from jsonb_to_recordset(?::jsonb)
       as x(employee_number text, username text, path text)`,
    [JSON.stringify(rows)],
  );
}

/** Users straight into the directory (auth_users). */
export async function insertUsers(t: TestApp, users: { id: string; employeeNumber?: string | null }[]): Promise<void> {
  const rows = users.map((user) => ({
    id: user.id,
    name: `User ${user.id}`,
    employee_number: user.employeeNumber ?? null,
  }));
  await t.app.services.orm.em.fork().execute(
    `insert into auth_users (id, name, employee_number)
     select x.id, x.name, x.employee_number from jsonb_to_recordset(?::jsonb) as x(id text, name text, employee_number text)`,
    [JSON.stringify(rows)],
  );
}

export async function rowCounts(t: TestApp): Promise<Record<string, number>> {
  const em = t.app.services.orm.em.fork();
  const counts: Record<string, number> = {};
  for (const table of PERMISSION_TABLES) {
    const rows = await em.execute<{ n: string }[]>(`select count(*) as n from ${table}`);
    counts[table] = Number(rows[0]!.n);
  }
  return counts;
}

const PERMISSION_WRITES = new Set(['setModels', 'setStarCheck', 'setQuotaCheck']);

/** Every permission write the gateway received (the health probe's reads are left out). */
export function permissionCalls(simulator: GatewaySimulator) {
  return simulator.calls().filter((call) => call.route !== null && PERMISSION_WRITES.has(call.route));
}

/** The permission writes the gateway received, in order, as [employee_number, value]. */
export function modelPushes(simulator: GatewaySimulator): [string, string[]][] {
  return simulator
    .calls({ route: 'setModels' })
    .map((call) => [call.params.employee_number!, JSON.parse(call.params.models!) as string[]]);
}

export function starCheckPushes(simulator: GatewaySimulator): [string, boolean][] {
  return simulator
    .calls({ route: 'setStarCheck' })
    .map((call) => [call.params.employee_number!, call.params.enabled === 'true']);
}

export function quotaCheckPushes(simulator: GatewaySimulator): [string, boolean][] {
  return simulator
    .calls({ route: 'setQuotaCheck' })
    .map((call) => [call.params.employee_number!, call.params.enabled === 'true']);
}

export const SET_WHITELIST = `
  mutation Set($input: SetModelWhitelistInput!) {
    setModelWhitelist(input: $input) { targetType targetIdentifier models updatedAt }
  }`;

export const SET_SWITCH = `
  mutation Set($input: SetSwitchInput!) {
    setSwitch(input: $input) { kind targetType targetIdentifier enabled updatedAt }
  }`;

export const EFFECTIVE = `
  query Effective($kind: PermissionKind!, $targetType: TargetType!, $id: String!) {
    effectivePermission(kind: $kind, targetType: $targetType, targetIdentifier: $id) {
      kind targetType targetIdentifier models enabled source sourceIdentifier
    }
  }`;

export const AUDITS = `
  query Audits($targetIdentifier: String, $operation: String, $first: Int, $after: String, $offset: Int) {
    permissionAudits(targetIdentifier: $targetIdentifier, operation: $operation, first: $first, after: $after, offset: $offset) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor }
      nodes { id operation targetType targetIdentifier details createdAt }
    }
  }`;

export interface Effective {
  kind: string;
  targetType: string;
  targetIdentifier: string;
  models: string[] | null;
  enabled: boolean | null;
  source: string;
  sourceIdentifier: string | null;
}

/** GraphQL helpers bound to an app and its admin token; they throw on unexpected errors. */
export function permissionApi(t: TestApp) {
  const ok = <T>(response: GraphqlResponse<T>): T => {
    if (response.errors) throw new Error(`unexpected GraphQL error: ${JSON.stringify(response.errors)}`);
    return response.data as T;
  };
  return {
    setWhitelist: (input: Record<string, unknown>, token = t.adminToken) =>
      t.gql<{ setModelWhitelist: Record<string, unknown> }>(SET_WHITELIST, { input }, { token }),
    async whitelist(input: Record<string, unknown>) {
      return ok(
        await t.gql<{ setModelWhitelist: Record<string, unknown> }>(SET_WHITELIST, { input }, { token: t.adminToken }),
      ).setModelWhitelist;
    },
    setSwitch: (input: Record<string, unknown>, token = t.adminToken) =>
      t.gql<{ setSwitch: Record<string, unknown> }>(SET_SWITCH, { input }, { token }),
    async switchOn(input: Record<string, unknown>) {
      return ok(await t.gql<{ setSwitch: Record<string, unknown> }>(SET_SWITCH, { input }, { token: t.adminToken }))
        .setSwitch;
    },
    async effective(kind: string, targetType: string, id: string): Promise<Effective> {
      return ok(
        await t.gql<{ effectivePermission: Effective }>(EFFECTIVE, { kind, targetType, id }, { token: t.adminToken }),
      ).effectivePermission;
    },
    effectiveRaw: (kind: string, targetType: string, id: string, token = t.adminToken) =>
      t.gql<{ effectivePermission: Effective }>(EFFECTIVE, { kind, targetType, id }, { token }),
    async audits(variables: Record<string, unknown> = {}) {
      return ok(
        await t.gql<{
          permissionAudits: {
            totalCount: number;
            pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null };
            nodes: {
              id: string;
              operation: string;
              targetType: string | null;
              targetIdentifier: string | null;
              details: Record<string, unknown> | null;
              createdAt: string;
            }[];
          };
        }>(AUDITS, variables, { token: t.adminToken }),
      ).permissionAudits;
    },
  };
}

export { errorCode };

/** Feeds these employees to the HR simulator and runs the app's employee sync (its result). */
export async function syncEmployees(hr: HrTestContext, employees: readonly HrEmployeeRecord[]) {
  hr.hr.setFixture({ employees: [...employees] });
  return hr.sync.sync(hr.t.app.services.orm, silentLogger());
}

/**
 * The starting point of the end-to-end permission tests (HR simulator → sync → gateway simulator):
 * no settings, effective records, audits, outbox or mirror rows; empty simulators (held calls let go);
 * then one sync of `employees`.
 */
export async function resetPermissionScene(hr: HrTestContext, employees: readonly HrEmployeeRecord[]) {
  await hr
    .em()
    .execute(
      `truncate ${[...PERMISSION_TABLES, 'permission_removal_push', 'employee_department'].join(', ')} restart identity`,
    );
  hr.t.simulator.reset();
  hr.hr.reset();
  await syncEmployees(hr, employees);
}
