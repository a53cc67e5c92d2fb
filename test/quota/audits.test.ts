import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { amountToCents } from '../../src/money.js';
import { errorCode, type GraphqlResponse, startTestApp, type TestApp } from '../support/app.js';
import { addDirectoryUsers, checkInvariants, em, grant, testClock } from './quota-support.js';

/** myQuotaAudits / quotaAudits (SPEC §5 "Audits"): newest first with id tie-break, filters, paging, access. */

const T0 = '2026-11-15T04:00:00.000Z';
const T1 = '2026-11-15T05:00:00.000Z';
const DEC = '2026-12-31T15:59:59.000Z';
const clock = testClock(T0);

const AUDIT_FIELDS = `id userId amount operation voucherCode relatedUser strategyId strategyName reason expiryDate createdAt
  details { operation summary { totalAmount totalItems successfulItems failedItems expiredItems earliestExpiryDate }
    items { amount expiryDate status failureReason originalQuota newQuota } }`;
const MY_AUDITS = `query($filter: QuotaAuditFilter, $first: Int, $after: String, $offset: Int) {
  myQuotaAudits(filter: $filter, first: $first, after: $after, offset: $offset) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } }
    nodes { ${AUDIT_FIELDS} }
  }
}`;
/** Light enough for first: 100 under the complexity limit. */
const MY_AUDITS_LIGHT = `query($first: Int) {
  myQuotaAudits(first: $first) { totalCount nodes { id userId amount operation createdAt details { operation } } }
}`;
const USER_AUDITS = `query($userId: String!, $filter: QuotaAuditFilter, $first: Int) {
  quotaAudits(userId: $userId, filter: $filter, first: $first) { totalCount nodes { id userId operation amount } }
}`;

interface AuditNode {
  id: string;
  userId: string;
  amount: number;
  operation: string;
  createdAt: string;
  details: unknown;
  strategyId: string | null;
  strategyName: string | null;
}
interface Page {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  edges: { cursor: string; node: { id: string } }[];
  nodes: AuditNode[];
}

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-audits', clock });
  await addDirectoryUsers(app, [{ id: 'user-1' }, { id: 'someone-else' }]);
  clock.set(T0);
  for (let index = 0; index < 24; index++) await grant(app, 'user-1', 1 + index, DEC);
  await app.app.services.quota.grantQuota(em(app), {
    userId: 'user-1',
    amount: amountToCents(0.5),
    expiryDate: new Date(DEC),
    strategyId: '42',
    strategyName: 'welcome-bonus',
    actor: 'strategy:42',
  });
  await grant(app, 'someone-else', 5, DEC);
  clock.set(T1);
  await app.app.services.quota.deductQuota(em(app), 'admin-1', { userId: 'user-1', amount: 3, reason: 'correction' });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  await checkInvariants(app);
});

async function allMyAudits(): Promise<Page> {
  const response = await app.gql<{ myQuotaAudits: Page }>(MY_AUDITS_LIGHT, { first: 100 }, { token: app.userToken });
  expect(response.errors).toBeUndefined();
  return response.data!.myQuotaAudits;
}

async function myAudits(
  variables: Record<string, unknown>,
  token = app.userToken,
): Promise<GraphqlResponse<{ myQuotaAudits: Page }>> {
  return app.gql(MY_AUDITS, variables, { token });
}

describe('myQuotaAudits', () => {
  it('lists the caller’s audits newest first, id descending among equal times', async () => {
    const page = await allMyAudits();
    expect(page.totalCount).toBe(26);
    expect(page.nodes.every((node) => node.userId === 'user-1')).toBe(true);
    expect(page.nodes[0]).toMatchObject({ operation: 'DEDUCT', amount: -3, createdAt: T1 });
    const rest = page.nodes.slice(1);
    expect(rest.every((node) => node.createdAt === T0)).toBe(true);
    const ids = rest.map((node) => BigInt(node.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    // The first grant (amount 1) is the oldest.
    expect(page.nodes.at(-1)!.amount).toBe(1);
  });

  it('serves the contract’s AuditDetails and strategy fields', async () => {
    const page = (await myAudits({ first: 2 })).data!.myQuotaAudits;
    expect(page.nodes[1]).toMatchObject({
      operation: 'RECHARGE',
      amount: 0.5,
      strategyId: '42',
      strategyName: 'welcome-bonus',
      details: {
        operation: 'RECHARGE',
        summary: {
          totalAmount: 0.5,
          totalItems: 1,
          successfulItems: 1,
          failedItems: 0,
          expiredItems: 0,
          earliestExpiryDate: DEC,
        },
        items: [
          { amount: 0.5, expiryDate: DEC, status: 'SUCCESS', failureReason: null, originalQuota: 300, newQuota: 300.5 },
        ],
      },
    });
  });

  it('pages with first/after and with offset, without overlap', async () => {
    const first = (await myAudits({ first: 10 })).data!.myQuotaAudits;
    expect(first.nodes).toHaveLength(10);
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    expect(first.edges.map((edge) => edge.node.id)).toEqual(first.nodes.map((node) => node.id));
    const second = (await myAudits({ first: 10, after: first.pageInfo.endCursor })).data!.myQuotaAudits;
    expect(second.pageInfo.hasPreviousPage).toBe(true);
    const last = (await myAudits({ first: 10, offset: 20 })).data!.myQuotaAudits;
    expect(last.nodes).toHaveLength(6);
    expect(last.pageInfo.hasNextPage).toBe(false);
    const all = (await allMyAudits()).nodes.map((node) => node.id);
    expect([...first.nodes, ...second.nodes, ...last.nodes].map((node) => node.id)).toEqual(all);
  });

  it('continues after the cursor row: audits written between two pages neither repeat nor shift it', async () => {
    await addDirectoryUsers(app, [{ id: 'pager' }]);
    const token = await app.token({ userId: 'pager' });
    clock.set(T0);
    for (let index = 0; index < 5; index++) await grant(app, 'pager', 1 + index, DEC); // five at one instant: ties
    const pageOf = async (variables: Record<string, unknown>) => {
      const response = await myAudits(variables, token);
      expect(response.errors).toBeUndefined();
      return response.data!.myQuotaAudits;
    };
    const before = (await pageOf({ first: 5 })).nodes.map((node) => node.id);
    const first = await pageOf({ first: 2 });
    expect(first.nodes.map((node) => node.id)).toEqual(before.slice(0, 2));
    clock.set(T1);
    await grant(app, 'pager', 10, DEC); // the newest audit lands on top of the list
    const second = await pageOf({ first: 2, after: first.pageInfo.endCursor });
    expect(second.nodes.map((node) => node.id)).toEqual(before.slice(2, 4));
    expect(second.totalCount).toBe(6);
    const third = await pageOf({ first: 2, after: second.pageInfo.endCursor });
    expect(third.nodes.map((node) => node.id)).toEqual(before.slice(4));
    expect(third.pageInfo.hasNextPage).toBe(false);
    // A cursor is opaque: one whose row id was forged is refused, not passed to SQL.
    const forged = Buffer.from('v2:1:1; drop table quota_audit', 'utf8').toString('base64url');
    expect(errorCode(await myAudits({ first: 2, after: forged }, token))).toBe('BAD_USER_INPUT');
    // A well-formed cursor naming no audit, or another user's, would compare with nothing and answer an
    // empty last page as if the list ended: refused instead.
    const otherUsers = (await myAudits({ first: 1 })).data!.myQuotaAudits.pageInfo.endCursor!;
    const nowhere = Buffer.from('v2:1:999999999', 'utf8').toString('base64url');
    for (const after of [otherUsers, nowhere]) {
      const response = await myAudits({ first: 2, after }, token);
      expect(errorCode(response)).toBe('BAD_USER_INPUT');
      expect(response.errors![0]!.message).toBe('after is not a valid cursor');
    }
  });

  it('filters by operation and by an inclusive time range', async () => {
    const deducts = (await myAudits({ filter: { operation: 'DEDUCT' } })).data!.myQuotaAudits;
    expect(deducts.totalCount).toBe(1);
    const recharges = (await myAudits({ filter: { operation: 'RECHARGE' }, first: 5 })).data!.myQuotaAudits;
    expect(recharges.totalCount).toBe(25);
    expect((await myAudits({ filter: { from: T1 } })).data!.myQuotaAudits.totalCount).toBe(1);
    expect((await myAudits({ filter: { to: T0 } })).data!.myQuotaAudits.totalCount).toBe(25);
    expect((await myAudits({ filter: { from: T0, to: T0 } })).data!.myQuotaAudits.totalCount).toBe(25);
    // Any offset is accepted: 13:00+08:00 is T1.
    expect((await myAudits({ filter: { from: '2026-11-15T13:00:00+08:00' } })).data!.myQuotaAudits.totalCount).toBe(1);
    expect((await myAudits({ filter: { operation: 'EXPIRE' } })).data!.myQuotaAudits.totalCount).toBe(0);
  });

  it('refuses bad arguments with BAD_USER_INPUT', async () => {
    const bad: Record<string, unknown>[] = [
      { filter: { from: T1, to: T0 } },
      { filter: { operation: 'REFUND' } },
      { filter: { from: 'yesterday' } },
      { first: 0 },
      { first: 101 },
      { offset: -1 },
      { after: 'not-a-cursor' },
    ];
    for (const variables of bad) {
      expect(errorCode(await myAudits(variables)), JSON.stringify(variables)).toBe('BAD_USER_INPUT');
    }
  });

  it('needs a token, and shows a user only their own audits', async () => {
    expect(errorCode(await app.gql(MY_AUDITS, {}))).toBe('UNAUTHENTICATED');
    const token = await app.token({ userId: 'someone-else' });
    const page = (await myAudits({}, token)).data!.myQuotaAudits;
    expect(page.totalCount).toBe(1);
    expect(page.nodes[0]).toMatchObject({ userId: 'someone-else', amount: 5 });
  });

  it('answers details null for a row whose details are not AuditDetails (copied from the old system)', async () => {
    await em(app).execute(
      `insert into quota_audit (user_id, amount, operation, expiry_date, details, create_time)
       values ('user-1', 0, 'RECHARGE', ?, '{"legacy":true}', ?)`,
      [new Date(DEC), new Date('2026-11-01T00:00:00Z')],
    );
    const page = await allMyAudits();
    expect(page.nodes.at(-1)).toMatchObject({ amount: 0, details: null });
  });
});

describe('quotaAudits [admin]', () => {
  it('shows any user’s audits to an admin', async () => {
    const response = await app.gql<{ quotaAudits: { totalCount: number; nodes: AuditNode[] } }>(
      USER_AUDITS,
      { userId: 'someone-else' },
      { token: app.adminToken },
    );
    expect(response.data!.quotaAudits).toMatchObject({
      totalCount: 1,
      nodes: [{ userId: 'someone-else', operation: 'RECHARGE', amount: 5 }],
    });
    const filtered = await app.gql<{ quotaAudits: { totalCount: number } }>(
      USER_AUDITS,
      { userId: 'user-1', filter: { operation: 'DEDUCT' } },
      { token: app.adminToken },
    );
    expect(filtered.data!.quotaAudits.totalCount).toBe(1);
  });

  it('is FORBIDDEN to users (even for their own id) and refuses an empty user id', async () => {
    for (const userId of ['someone-else', 'user-1']) {
      expect(errorCode(await app.gql(USER_AUDITS, { userId }, { token: app.userToken }))).toBe('FORBIDDEN');
    }
    expect(errorCode(await app.gql(USER_AUDITS, { userId: '' }, { token: app.adminToken }))).toBe('BAD_USER_INPUT');
  });

  it('compares times at second precision: `to` includes its whole second', async () => {
    clock.set('2026-11-16T00:00:00.700Z');
    await app.app.services.quota.deductQuota(em(app), 'admin-1', { userId: 'someone-else', amount: 1, reason: 'late' });
    const count = async (filter: Record<string, unknown>) =>
      (
        await app.gql<{ quotaAudits: { totalCount: number } }>(
          USER_AUDITS,
          { userId: 'someone-else', filter },
          { token: app.adminToken },
        )
      ).data!.quotaAudits.totalCount;
    expect(await count({ from: '2026-11-16T00:00:00Z', to: '2026-11-16T00:00:00Z' })).toBe(1);
    expect(await count({ from: '2026-11-16T00:00:00.900Z' })).toBe(1);
    expect(await count({ to: '2026-11-15T23:59:59.999Z' })).toBe(1);
    expect(await count({ from: '2026-11-16T00:00:01Z' })).toBe(0);
  });
});
