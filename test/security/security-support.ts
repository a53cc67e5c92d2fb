import { readFileSync } from 'node:fs';
import { buildSchema, type GraphQLField, type GraphQLObjectType, type GraphQLSchema, isNonNullType } from 'graphql';
import { expect } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { buildApiSchema } from '../../src/graphql/schema.js';
import { amountToCents } from '../../src/money.js';
import { TEST_ADMIN_ID, TEST_USER_ID, type TestApp } from '../support/app.js';

/**
 * The security tests' shared parts: the table of every root field with its access rule and a minimal
 * valid call, the fixture those calls need, and a "nothing changed" snapshot of the whole database
 * and the gateway simulator. The table lives here, not in a test file, because both the
 * authorization matrix and the malicious-input sweep start from its calls.
 */

export type Access = 'public' | 'user' | 'admin';
export type RootKind = 'query' | 'mutation';

/** What the table's calls need: users, tokens, a strategy and vouchers in each direction. */
export interface Fixture {
  user: string;
  other: string;
  third: string;
  admin: string;
  /** A user only the gateway knows (no ledger rows), for the gateway's admin mutations. */
  gatewayOnly: string;
  userToken: string;
  otherToken: string;
  thirdToken: string;
  adminToken: string;
  /** Both `user` and `other` hold a batch with this expiry; `other` also one with `otherExpiry`. */
  expiry: string;
  otherExpiry: string;
  strategyId: string;
  /** Given by `user` to `other`. */
  voucherFromUser: string;
  /** Given by `other` to `user`, unredeemed. */
  voucherToUser: string;
  /** Given by `other` to `third`: `user` is neither giver nor receiver. */
  voucherOfOthers: string;
}

export interface RootFieldSpec {
  access: Access;
  /** Arguments of a minimal valid call; optional ones may be left out (new optional ones break nothing). */
  args: (fx: Fixture) => Record<string, unknown>;
  /** The selection set for an object result; '' for a scalar or a list of scalars. */
  select: string;
}

let serial = 0;
/** A name no earlier call used: creating twice must not fail for a reason other than access. */
export function uniqueName(label: string): string {
  serial += 1;
  return `${label}-${serial}-${Math.random().toString(36).slice(2, 7)}`;
}

/**
 * Every Query and Mutation field with its access decision (SPEC §1 and the contract's [admin] /
 * [user] marks). A field missing here fails the authorization matrix: a new operation cannot ship
 * without a decision. Calls are harmless where they can be (unknown ids, a gateway-only user).
 */
export const ROOT_FIELDS: Record<RootKind, Record<string, RootFieldSpec>> = {
  query: {
    departments: { access: 'admin', args: () => ({}), select: '' },
    effectivePermission: {
      access: 'admin',
      args: (fx) => ({ kind: 'MODEL', targetType: 'USER', targetIdentifier: fx.user }),
      select: '{ kind source }',
    },
    employees: { access: 'admin', args: () => ({}), select: '{ totalCount }' },
    gatewayEmployee: { access: 'admin', args: () => ({ employeeNumber: 'E-SEC-1' }), select: '{ employeeNumber }' },
    gatewayQuota: { access: 'admin', args: (fx) => ({ userId: fx.other }), select: '{ userId totalQuota }' },
    health: { access: 'public', args: () => ({}), select: '{ status }' },
    jobRun: { access: 'admin', args: () => ({ id: '999999' }), select: '{ id }' },
    jobRuns: { access: 'admin', args: () => ({}), select: '{ id }' },
    modelWhitelist: { access: 'admin', args: (fx) => ({ user: { userId: fx.user } }), select: '{ models }' },
    monthlyUsage: { access: 'admin', args: (fx) => ({ userId: fx.other }), select: '{ yearMonth }' },
    myQuota: { access: 'user', args: () => ({}), select: '{ userId totalQuota }' },
    myQuotaAudits: { access: 'user', args: () => ({}), select: '{ totalCount }' },
    permissionAudits: { access: 'admin', args: () => ({}), select: '{ totalCount }' },
    previewCondition: { access: 'admin', args: () => ({ expression: 'true()' }), select: '{ matchedUsers }' },
    quotaAudits: { access: 'admin', args: (fx) => ({ userId: fx.other }), select: '{ totalCount }' },
    strategies: { access: 'admin', args: () => ({}), select: '{ totalCount }' },
    strategy: { access: 'admin', args: (fx) => ({ id: fx.strategyId }), select: '{ id }' },
    strategyExecutions: { access: 'admin', args: (fx) => ({ strategyId: fx.strategyId }), select: '{ totalCount }' },
    switchSetting: {
      access: 'admin',
      args: (fx) => ({ kind: 'STAR_CHECK', user: { userId: fx.user } }),
      select: '{ enabled }',
    },
    userQuota: { access: 'admin', args: (fx) => ({ userId: fx.other }), select: '{ userId batches { amount } }' },
    validateCondition: { access: 'admin', args: () => ({ expression: 'true()' }), select: '{ valid }' },
    validateCron: { access: 'admin', args: () => ({ expression: '0 0 * * * *' }), select: '' },
    viewer: { access: 'user', args: () => ({}), select: '{ userId isAdmin }' },
    voucher: { access: 'user', args: (fx) => ({ code: fx.voucherFromUser }), select: '{ valid giverId }' },
  },
  mutation: {
    adjustGatewayQuota: {
      access: 'admin',
      args: (fx) => ({ userId: fx.gatewayOnly, counter: 'USED', delta: 1 }),
      select: '{ usedQuota }',
    },
    createStrategy: {
      access: 'admin',
      args: () => ({
        input: {
          name: uniqueName('sec'),
          title: 'Security',
          type: 'SINGLE',
          amount: 1,
          condition: 'match-user("nobody")',
          enabled: false,
        },
      }),
      select: '{ id }',
    },
    deductQuota: {
      access: 'admin',
      args: (fx) => ({ input: { userId: fx.other, amount: 0.01, reason: 'security test' } }),
      select: '{ id }',
    },
    deleteStrategy: { access: 'admin', args: () => ({ id: '999999' }), select: '' },
    disableStrategy: { access: 'admin', args: (fx) => ({ id: fx.strategyId }), select: '{ enabled }' },
    enableStrategy: { access: 'admin', args: (fx) => ({ id: fx.strategyId }), select: '{ enabled }' },
    runStrategy: { access: 'admin', args: (fx) => ({ id: fx.strategyId }), select: '{ id }' },
    setGatewayQuota: {
      access: 'admin',
      args: (fx) => ({ userId: fx.gatewayOnly, counter: 'TOTAL', value: 5 }),
      select: '{ totalQuota }',
    },
    setGatewayStarredProjects: {
      access: 'admin',
      args: () => ({ employeeNumber: 'E-SEC-1', projects: ['zgsm-ai.zgsm'] }),
      select: '{ employeeNumber }',
    },
    setModelWhitelist: {
      access: 'admin',
      args: (fx) => ({ input: { user: { userId: fx.user }, models: ['gpt-4'] } }),
      select: '{ models }',
    },
    setSwitch: {
      access: 'admin',
      args: (fx) => ({ input: { user: { userId: fx.user }, kind: 'STAR_CHECK', enabled: true } }),
      select: '{ enabled }',
    },
    transferIn: { access: 'user', args: (fx) => ({ voucherCode: fx.voucherToUser }), select: '{ status }' },
    transferOut: {
      access: 'user',
      args: (fx) => ({ input: { receiverId: fx.other, items: [{ amount: 0.01, expiryDate: fx.expiry }] } }),
      select: '{ voucherCode }',
    },
    triggerScan: { access: 'admin', args: () => ({ type: 'SYNC_QUOTAS' }), select: '{ id }' },
    updateStrategy: {
      access: 'admin',
      args: (fx) => ({ id: fx.strategyId, input: { title: 'Retitled by the security test' } }),
      select: '{ id }',
    },
  },
};

export interface TableCase {
  kind: RootKind;
  name: string;
  spec: RootFieldSpec;
  title: string;
}

export const TABLE_CASES: TableCase[] = (['query', 'mutation'] as const).flatMap((kind) =>
  Object.entries(ROOT_FIELDS[kind]).map(([name, spec]) => ({ kind, name, spec, title: `${kind} ${name}` })),
);

// ---------------------------------------------------------------------------------------------
// Schemas

/** The executable schema the server serves (built from the resolvers). */
export function servedSchema(): Promise<GraphQLSchema> {
  return buildApiSchema();
}

/** The checked-in schema.graphql at the repository root. */
export function fileSchema(): GraphQLSchema {
  return buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
}

export function rootType(schema: GraphQLSchema, kind: RootKind): GraphQLObjectType {
  const type = kind === 'query' ? schema.getQueryType() : schema.getMutationType();
  if (!type) throw new Error(`the schema has no ${kind} type`);
  return type;
}

export function rootField(schema: GraphQLSchema, kind: RootKind, name: string): GraphQLField<unknown, unknown> {
  const field = rootType(schema, kind).getFields()[name];
  if (!field) throw new Error(`${kind} ${name} is not in the schema`);
  return field;
}

/** Arguments the schema requires (non-null without a default) that `args` does not give. */
export function missingRequiredArguments(
  field: GraphQLField<unknown, unknown>,
  args: Record<string, unknown>,
): string[] {
  return field.args
    .filter((arg) => isNonNullType(arg.type) && arg.defaultValue === undefined && !(arg.name in args))
    .map((arg) => arg.name);
}

/**
 * The operation for one root field with `args` as variables, typed as the schema types them:
 * `mutation Op($id: ID!) { runStrategy(id: $id) { id } }`.
 */
export function operationFor(
  schema: GraphQLSchema,
  kind: RootKind,
  name: string,
  args: Record<string, unknown>,
  select: string,
): string {
  const field = rootField(schema, kind, name);
  const definitions: string[] = [];
  const uses: string[] = [];
  for (const key of Object.keys(args)) {
    const arg = field.args.find((candidate) => candidate.name === key);
    if (!arg) throw new Error(`${kind} ${name} has no argument ${key}`);
    definitions.push(`$${key}: ${String(arg.type)}`);
    uses.push(`${key}: $${key}`);
  }
  const variables = definitions.length > 0 ? `(${definitions.join(', ')})` : '';
  const call = uses.length > 0 ? `(${uses.join(', ')})` : '';
  return `${kind} Security${variables} { ${name}${call} ${select} }`;
}

// ---------------------------------------------------------------------------------------------
// Fixture

export const EXPIRY = '2099-01-31T15:59:59.000Z';
export const OTHER_EXPIRY = '2099-02-28T15:59:59.000Z';

const TRANSFER_OUT = `mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }`;

async function voucher(app: TestApp, token: string, receiverId: string): Promise<string> {
  const response = await app.gql<{ transferOut: { voucherCode: string } }>(
    TRANSFER_OUT,
    { input: { receiverId, items: [{ amount: 1, expiryDate: EXPIRY }] } },
    { token },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.transferOut.voucherCode;
}

/** Directory users, batches (through the real ledger), a strategy and three vouchers. */
export async function createFixture(app: TestApp, label: string): Promise<Fixture> {
  const other = `${label}-other`;
  const third = `${label}-third`;
  const em = app.app.services.orm.em.fork();
  for (const id of [TEST_USER_ID, other, third, TEST_ADMIN_ID]) {
    await em.execute('insert into auth_users (id, name) values (?, ?) on conflict (id) do nothing', [id, `Name ${id}`]);
  }
  const grant = (userId: string, amount: number, expiry: string) =>
    app.app.services.quota.grantQuota(app.app.services.orm.em.fork(), {
      userId,
      amount: amountToCents(amount),
      expiryDate: new Date(expiry),
      actor: 'security-test',
    });
  await grant(TEST_USER_ID, 100, EXPIRY);
  await grant(other, 100, EXPIRY);
  await grant(other, 50, OTHER_EXPIRY);

  const otherToken = await app.token({ userId: other });
  const thirdToken = await app.token({ userId: third });
  const created = await app.gql<{ createStrategy: { id: string } }>(
    `mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }`,
    {
      input: {
        name: `${label}-strategy`,
        title: 'Security fixture',
        type: 'SINGLE',
        amount: 1,
        condition: 'match-user("nobody")',
      },
    },
    { token: app.adminToken },
  );
  expect(created.errors).toBeUndefined();

  return {
    user: TEST_USER_ID,
    other,
    third,
    admin: TEST_ADMIN_ID,
    gatewayOnly: `${label}-gateway-only`,
    userToken: app.userToken,
    otherToken,
    thirdToken,
    adminToken: app.adminToken,
    expiry: EXPIRY,
    otherExpiry: OTHER_EXPIRY,
    strategyId: created.data!.createStrategy.id,
    voucherFromUser: await voucher(app, app.userToken, other),
    voucherToUser: await voucher(app, otherToken, TEST_USER_ID),
    voucherOfOthers: await voucher(app, otherToken, third),
  };
}

// ---------------------------------------------------------------------------------------------
// "Nothing changed"

const tablesOf = new WeakMap<TestApp, string[]>();

/**
 * Everything a refused call must leave alone: a digest of every table's rows (one query), the
 * simulator's counters and switches, and how many gateway calls changed its state.
 */
export async function stateSnapshot(app: TestApp): Promise<Record<string, string>> {
  const em = app.app.services.orm.em.fork();
  let tables = tablesOf.get(app);
  if (!tables) {
    const rows = await em.execute<{ table_name: string }[]>(
      `select table_name from information_schema.tables
        where table_schema = current_schema() and table_type = 'BASE TABLE' and table_name <> 'mikro_orm_migrations'
        order by table_name`,
    );
    tables = rows.map((row) => row.table_name);
    tablesOf.set(app, tables);
  }
  const digests = tables
    .map(
      (table) =>
        `(select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from "${table}" t) as "${table}"`,
    )
    .join(', ');
  const [row] = await em.execute<Record<string, string>[]>(`select ${digests}`);
  return {
    ...row,
    gateway: JSON.stringify(app.simulator.snapshot()),
    gatewayWrites: String(app.simulator.calls().filter((call) => call.applied).length),
  };
}

/**
 * A cheaper "nothing changed" for the many calls of the input sweep: a row trigger on every table
 * counts written rows in a one-row table, inside the writing transaction (so a write that rolls back
 * is not counted). Test databases only: installed by the test, dropped with the database.
 */
export async function installWriteCounter(app: TestApp): Promise<void> {
  const em = app.app.services.orm.em.fork();
  const rows = await em.execute<{ table_name: string }[]>(
    `select table_name from information_schema.tables
      where table_schema = current_schema() and table_type = 'BASE TABLE' and table_name <> 'mikro_orm_migrations'`,
  );
  await em.execute(`create table security_test_writes (n bigint not null)`);
  await em.execute(`insert into security_test_writes values (0)`);
  await em.execute(`create function security_test_count_write() returns trigger language plpgsql as $$
    begin update security_test_writes set n = n + 1; return null; end $$`);
  for (const { table_name: table } of rows) {
    await em.execute(`create trigger security_test_writes after insert or update or delete on "${table}"
      for each row execute function security_test_count_write()`);
  }
}

/** Rows written since the counter was installed, with the simulator's state: equal = nothing changed. */
export async function writeCount(app: TestApp): Promise<Record<string, string>> {
  const [row] = await app.app.services.orm.em
    .fork()
    .execute<{ n: string }[]>('select n::text as n from security_test_writes');
  return {
    databaseWrites: row!.n,
    gateway: JSON.stringify(app.simulator.snapshot()),
    gatewayWrites: String(app.simulator.calls().filter((call) => call.applied).length),
  };
}

/** Waits until no job run is queued or running (a manual trigger answers at once; the work goes on). */
export async function settleJobs(app: TestApp, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await app.app.services.orm.em
      .fork()
      .execute<{ n: string }[]>(`select count(*) as n from job_run where status in ('QUEUED', 'RUNNING')`);
    if (Number(row!.n) === 0) return;
    if (Date.now() > deadline) throw new Error('job runs still active after the deadline');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface WireError {
  message: string;
  extensions?: { code?: unknown; [key: string]: unknown };
}

export const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/** The codes of a response's errors. */
export function codesOf(errors: readonly WireError[] | undefined): unknown[] {
  return (errors ?? []).map((error) => error.extensions?.code);
}
