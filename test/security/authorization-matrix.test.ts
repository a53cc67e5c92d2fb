import type { GraphQLSchema } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, type GraphqlResponse, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import {
  type Access,
  codesOf,
  createFixture,
  type Fixture,
  fileSchema,
  KNOWN_CODES,
  missingRequiredArguments,
  operationFor,
  ROOT_FIELDS,
  type RootKind,
  rootField,
  rootType,
  servedSchema,
  settleJobs,
  stateSnapshot,
  TABLE_CASES,
  type TableCase,
} from './security-support.js';

/**
 * Issue 6, security review by test: every Query and Mutation field × {anonymous, user, admin}, from
 * the table in security-support.ts (access decision and a minimal valid call per field). Anonymous
 * gets UNAUTHENTICATED on everything not public, a user FORBIDDEN on admin fields, an admin gets
 * through (a domain code such as NOT_FOUND is fine). Every refusal changes nothing: the whole
 * database and the gateway simulator are compared before and after. Then the cross-user cases: a user
 * reading another user's quota, audits and usage, or a voucher they neither gave nor receive.
 */

type Role = 'anonymous' | 'user' | 'admin';

let app: TestApp;
let fx: Fixture;
let schema: GraphQLSchema;

beforeAll(async () => {
  app = await startTestApp({ label: 'security-authz' });
  fx = await createFixture(app, 'authz');
  schema = await servedSchema();
});

afterAll(async () => {
  await app?.stop();
});

function tokenOf(role: Role): string | null {
  if (role === 'anonymous') return null;
  return role === 'admin' ? fx.adminToken : fx.userToken;
}

function expected(access: Access, role: Role): 'allowed' | 'UNAUTHENTICATED' | 'FORBIDDEN' {
  if (access === 'public' || role === 'admin') return 'allowed';
  if (role === 'anonymous') return 'UNAUTHENTICATED';
  return access === 'admin' ? 'FORBIDDEN' : 'allowed';
}

async function call({ kind, name, spec }: TableCase, role: Role): Promise<GraphqlResponse<Record<string, unknown>>> {
  const args = spec.args(fx);
  return app.gql(operationFor(schema, kind, name, args, spec.select), args, { token: tokenOf(role) });
}

/** Refused before anything happened: the code, no data, and the database and the gateway as they were. */
async function expectRefusal(
  field: TableCase,
  role: Role,
  code: 'UNAUTHENTICATED' | 'FORBIDDEN',
): Promise<GraphqlResponse<Record<string, unknown>>> {
  const before = await stateSnapshot(app);
  const response = await call(field, role);
  expect(response.status).toBe(200);
  expect(codesOf(response.errors)).toEqual([code]);
  // Refused by the root field's guard, not by a nested field that happens to be guarded too.
  expect(response.errors?.[0]?.path).toEqual([field.name]);
  expect(response.data?.[field.name] ?? null).toBeNull();
  expect(await stateSnapshot(app)).toEqual(before);
  return response;
}

/** Got past the guard: no refusal and no internal error; a domain code (NOT_FOUND, …) is fine. */
async function expectAllowed(field: TableCase, role: Role): Promise<void> {
  const response = await call(field, role);
  expect(response.status).toBe(200);
  for (const code of codesOf(response.errors)) {
    expect(KNOWN_CODES.has(code as string), `unknown code ${String(code)}`).toBe(true);
    expect(['UNAUTHENTICATED', 'FORBIDDEN', 'INTERNAL_SERVER_ERROR']).not.toContain(code);
  }
  // A manual trigger returns at once; let the run finish before the next refusal compares states.
  await settleJobs(app);
}

describe('the table', () => {
  const listed = (kind: RootKind) => Object.keys(ROOT_FIELDS[kind]).sort();
  const fieldsOf = (source: GraphQLSchema, kind: RootKind) => Object.keys(rootType(source, kind).getFields()).sort();

  it('lists every root field of the served schema and of schema.graphql, and no other', async () => {
    for (const kind of ['query', 'mutation'] as const) {
      for (const [source, fields] of [
        ['the served schema', fieldsOf(schema, kind)],
        ['schema.graphql', fieldsOf(fileSchema(), kind)],
      ] as const) {
        const missing = fields.filter((name) => !(name in ROOT_FIELDS[kind]));
        expect(missing, `${kind} fields of ${source} without an access decision in ROOT_FIELDS`).toEqual([]);
      }
      expect(listed(kind), `${kind} fields in ROOT_FIELDS that the served schema lacks`).toEqual(
        fieldsOf(schema, kind),
      );
    }
  });

  it("gives every field's required arguments, and only arguments the field has", () => {
    for (const { kind, name, spec } of TABLE_CASES) {
      const args = spec.args(fx);
      expect(missingRequiredArguments(rootField(schema, kind, name), args), `${kind} ${name}`).toEqual([]);
      expect(() => operationFor(schema, kind, name, args, spec.select)).not.toThrow();
    }
  });

  it('tolerates optional arguments it does not give (idempotencyKey on the four mutations)', () => {
    for (const name of ['transferOut', 'deductQuota', 'runStrategy', 'triggerScan']) {
      const field = rootField(schema, 'mutation', name);
      const key = field.args.find((arg) => arg.name === 'idempotencyKey');
      if (key) expect(String(key.type)).toBe('String');
      expect(missingRequiredArguments(field, ROOT_FIELDS.mutation[name]!.args(fx))).toEqual([]);
    }
  });
});

describe.each(TABLE_CASES)('$title', (field) => {
  it.each(['anonymous', 'user', 'admin'] as const)('%s', async (role) => {
    const outcome = expected(field.spec.access, role);
    if (outcome === 'allowed') await expectAllowed(field, role);
    else await expectRefusal(field, role, outcome);
  });
});

describe('one user and the data of another', () => {
  const READS = {
    userQuota: '{ userId totalQuota batches { amount } }',
    quotaAudits: '{ totalCount nodes { userId amount } }',
    monthlyUsage: '{ userId usedQuota }',
    gatewayQuota: '{ userId totalQuota }',
  } as const;

  it("a user cannot read another user's quota, audits or monthly usage, and the gateway is not even asked", async () => {
    for (const [name, select] of Object.entries(READS)) {
      app.simulator.clearCalls();
      const before = await stateSnapshot(app);
      const response = await app.gql(
        `query($userId: String!) { ${name}(userId: $userId) ${select} }`,
        { userId: fx.other },
        { token: fx.userToken },
      );
      expect(errorCode(response), name).toBe('FORBIDDEN');
      expect(response.data, name).toBeNull();
      expect(JSON.stringify(response.errors)).not.toContain('"amount"');
      expect(
        app.simulator.calls().filter((c) => c.params.user_id === fx.other),
        name,
      ).toEqual([]);
      expect(await stateSnapshot(app)).toEqual(before);
    }
    // The same reads as an administrator answer (so the refusals above are about access, not input).
    const admin = await app.gql<{ userQuota: { userId: string; batches: unknown[] } }>(
      `query($userId: String!) { userQuota(userId: $userId) ${READS.userQuota} }`,
      { userId: fx.other },
      { token: fx.adminToken },
    );
    expect(admin.errors).toBeUndefined();
    expect(admin.data?.userQuota.userId).toBe(fx.other);
    expect(admin.data?.userQuota.batches.length).toBeGreaterThan(0);
  });

  it("the user's own reads show only their own data", async () => {
    const response = await app.gql<{
      myQuota: { userId: string };
      viewer: { userId: string; quota: { userId: string } };
      myQuotaAudits: { nodes: { userId: string }[] };
    }>(
      '{ myQuota { userId } viewer { userId quota { userId } } myQuotaAudits(first: 100) { nodes { userId } } }',
      {},
      {
        token: fx.userToken,
      },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.myQuota.userId).toBe(fx.user);
    expect(response.data?.viewer.quota.userId).toBe(fx.user);
    const owners = new Set(response.data?.myQuotaAudits.nodes.map((node) => node.userId));
    expect([...owners]).toEqual([fx.user]);
  });

  it('a voucher the user neither gave nor receives is FORBIDDEN to read; giver, receiver and admin may', async () => {
    const VOUCHER = 'query($code: String!) { voucher(code: $code) { valid giverId receiverId items { amount } } }';
    const before = await stateSnapshot(app);
    const refused = await app.gql(VOUCHER, { code: fx.voucherOfOthers }, { token: fx.userToken });
    expect(errorCode(refused)).toBe('FORBIDDEN');
    expect(refused.data).toBeNull();
    expect(JSON.stringify(refused.errors)).not.toContain(fx.third);
    expect(await stateSnapshot(app)).toEqual(before);

    for (const token of [fx.otherToken, fx.thirdToken, fx.adminToken]) {
      const allowed = await app.gql<{ voucher: { valid: boolean; giverId: string; receiverId: string } }>(
        VOUCHER,
        { code: fx.voucherOfOthers },
        { token },
      );
      expect(allowed.errors).toBeUndefined();
      expect(allowed.data?.voucher).toMatchObject({ valid: true, giverId: fx.other, receiverId: fx.third });
    }
  });

  it("redeeming another user's voucher is VOUCHER_NOT_FOR_USER, changes nothing, and the receiver still can", async () => {
    const TRANSFER_IN = 'mutation($code: String!) { transferIn(voucherCode: $code) { status amount } }';
    const before = await stateSnapshot(app);
    const refused = await app.gql(TRANSFER_IN, { code: fx.voucherOfOthers }, { token: fx.userToken });
    expect(errorCode(refused)).toBe('VOUCHER_NOT_FOR_USER');
    expect(await stateSnapshot(app)).toEqual(before);

    const redeemed = await app.gql<{ transferIn: { status: string; amount: number } }>(
      TRANSFER_IN,
      { code: fx.voucherOfOthers },
      { token: fx.thirdToken },
    );
    expect(redeemed.errors).toBeUndefined();
    expect(redeemed.data?.transferIn).toEqual({ status: 'SUCCESS', amount: 1 });
  });

  it("a user cannot spend another user's batch: only the token user's batches are taken", async () => {
    const before = await stateSnapshot(app);
    const response = await app.gql(
      'mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }',
      { input: { receiverId: fx.third, items: [{ amount: 1, expiryDate: fx.otherExpiry }] } },
      { token: fx.userToken },
    );
    // Only `other` holds a batch with that expiry.
    expect(errorCode(response)).toBe('QUOTA_NOT_FOUND');
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it("a user cannot deduct from another user's quota", async () => {
    const before = await stateSnapshot(app);
    const response = await app.gql(
      'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { id } }',
      { input: { userId: fx.other, amount: 50, reason: 'not mine to take', reference: 'cross-user' } },
      { token: fx.userToken },
    );
    expect(errorCode(response)).toBe('FORBIDDEN');
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it('the ledger invariants hold after the whole matrix', async () => {
    await settleJobs(app);
    await assertLedgerInvariants(app.app.services.orm.em.fork(), app.simulator);
  });
});
