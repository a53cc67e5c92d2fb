import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, type GraphqlResponse, startTestApp, type TestApp } from '../support/app.js';
import {
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  grant,
  ledgerSnapshot,
  testClock,
} from './quota-support.js';

/** deductQuota [admin] (SPEC §5): FIFO from what is available, DEDUCT audit, idempotent reference. */

const clock = testClock('2026-11-15T04:00:00Z');
const DEC = '2026-12-31T15:59:59.000Z';
const JAN = '2027-01-31T15:59:59.000Z';

const DEDUCT = `mutation($input: DeductQuotaInput!) {
  deductQuota(input: $input) {
    id userId amount operation reason expiryDate createdAt relatedUser voucherCode strategyId strategyName
    details { operation summary { totalAmount totalItems successfulItems failedItems expiredItems earliestExpiryDate }
      items { amount expiryDate status failureReason originalQuota newQuota } }
  }
}`;

type DeductResponse = GraphqlResponse<{ deductQuota: Record<string, unknown> & { id: string } }>;

let app: TestApp;
const users = [
  'd-fifo',
  'd-bad',
  'd-ref',
  'd-ref-other',
  'd-race',
  'd-race-a',
  'd-race-b',
  'd-race-c',
  'd-gw',
  'd-zero',
];

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-deduct', clock });
  await addDirectoryUsers(
    app,
    users.map((id) => ({ id })),
  );
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  await checkInvariants(app);
});

function deduct(input: Record<string, unknown>, token = app.adminToken): Promise<DeductResponse> {
  return app.gql(DEDUCT, { input }, { token });
}

describe('deductQuota', () => {
  it('takes the amount FIFO from what is available after used, and writes the DEDUCT audit', async () => {
    await grant(app, 'd-fifo', 100, DEC);
    await grant(app, 'd-fifo', 100, JAN);
    app.simulator.setUser('d-fifo', { used: 15_000 });
    // Available: DEC 0 (all consumed), JAN 50.
    const response = await deduct({ userId: 'd-fifo', amount: 30, reason: '  refund correction  ' });
    expect(response.errors).toBeUndefined();
    expect(response.data!.deductQuota).toMatchObject({
      userId: 'd-fifo',
      amount: -30,
      operation: 'DEDUCT',
      reason: 'refund correction',
      expiryDate: JAN,
      relatedUser: null,
      voucherCode: null,
      strategyId: null,
      details: {
        operation: 'DEDUCT',
        summary: {
          totalAmount: 30,
          totalItems: 1,
          successfulItems: 1,
          failedItems: 0,
          expiredItems: 0,
          earliestExpiryDate: JAN,
        },
        items: [
          { amount: 30, expiryDate: JAN, status: 'SUCCESS', failureReason: null, originalQuota: 100, newQuota: 70 },
        ],
      },
    });
    expect(await batchesOf(app, 'd-fifo')).toEqual([
      { amount: 100, expiry: DEC, status: 'VALID' },
      { amount: 70, expiry: JAN, status: 'VALID' },
    ]);
    expect(app.simulator.getUser('d-fifo')).toEqual({ total: 17_000, used: 15_000 });
    const [row] = await app.app.services.orm.em
      .fork()
      .execute<{ actor: string }[]>(`select actor from quota_audit where user_id = 'd-fifo' and operation = 'DEDUCT'`);
    expect(row!.actor).toBe('admin-1');
  });

  it('spans batches in expiry order and removes a batch taken to 0', async () => {
    await grant(app, 'd-zero', 10, DEC);
    await grant(app, 'd-zero', 10, JAN);
    const response = await deduct({ userId: 'd-zero', amount: 15, reason: 'spans two batches' });
    const details = response.data!.deductQuota.details as { items: unknown[] };
    expect(details.items).toEqual([
      { amount: 10, expiryDate: DEC, status: 'SUCCESS', failureReason: null, originalQuota: 10, newQuota: 0 },
      { amount: 5, expiryDate: JAN, status: 'SUCCESS', failureReason: null, originalQuota: 10, newQuota: 5 },
    ]);
    expect(response.data!.deductQuota.expiryDate).toBe(DEC);
    expect(await batchesOf(app, 'd-zero')).toEqual([{ amount: 5, expiry: JAN, status: 'VALID' }]);
  });

  it('refuses, with nothing changed: more than available, bad inputs, an unknown user', async () => {
    await grant(app, 'd-bad', 50, DEC);
    app.simulator.setUser('d-bad', { used: 2_000 });
    const before = await ledgerSnapshot(app, 'd-bad');
    app.simulator.clearCalls();

    const refusals: [Record<string, unknown>, string][] = [
      [{ userId: 'd-bad', amount: 30.01, reason: 'r' }, 'INSUFFICIENT_QUOTA'],
      [{ userId: 'd-bad', amount: 0, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: -5, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1.001, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1e15, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1, reason: '' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1, reason: '   ' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1, reason: 'x'.repeat(501) }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1, reason: 'r', reference: '' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 1, reason: 'r', reference: 'x'.repeat(201) }, 'BAD_USER_INPUT'],
      [{ userId: '', amount: 1, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'x'.repeat(201), amount: 1, reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', amount: 'ten', reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'd-bad', reason: 'r' }, 'BAD_USER_INPUT'],
      [{ userId: 'not-in-directory', amount: 1, reason: 'r' }, 'USER_NOT_FOUND'],
    ];
    for (const [input, code] of refusals) {
      const response = await deduct(input);
      expect(errorCode(response), JSON.stringify(input).slice(0, 80)).toBe(code);
      expect(response.data).toBeNull();
    }
    expect(await ledgerSnapshot(app, 'd-bad')).toEqual(before);
    expect(app.simulator.calls({ method: 'POST' })).toEqual([]);

    // Exactly what is available is fine.
    const ok = await deduct({ userId: 'd-bad', amount: 30, reason: 'all that is left' });
    expect(ok.errors).toBeUndefined();
    expect(app.simulator.getUser('d-bad')).toEqual({ total: 2_000, used: 2_000 });
  });

  it('is for admins only: FORBIDDEN to a user, UNAUTHENTICATED without a token, nothing changed', async () => {
    await grant(app, 'd-gw', 10, DEC);
    const before = await ledgerSnapshot(app, 'd-gw');
    expect(errorCode(await deduct({ userId: 'd-gw', amount: 1, reason: 'r' }, app.userToken))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(DEDUCT, { input: { userId: 'd-gw', amount: 1, reason: 'r' } }))).toBe(
      'UNAUTHENTICATED',
    );
    expect(await ledgerSnapshot(app, 'd-gw')).toEqual(before);
  });

  it('a gateway failure answers GATEWAY_UNAVAILABLE and leaves everything as it was', async () => {
    const before = await ledgerSnapshot(app, 'd-gw');
    for (const route of ['getUsed', 'setTotal'] as const) {
      app.simulator.setFault(route, { kind: 'status', status: 500 });
      const response = await deduct({ userId: 'd-gw', amount: 1, reason: 'r', reference: `gw-${route}` });
      expect(errorCode(response), route).toBe('GATEWAY_UNAVAILABLE');
      app.simulator.clearFaults();
      expect(await ledgerSnapshot(app, 'd-gw')).toEqual(before);
    }
    // The reference was not consumed by the failed attempt.
    const retry = await deduct({ userId: 'd-gw', amount: 1, reason: 'r', reference: 'gw-setTotal' });
    expect(retry.errors).toBeUndefined();
  });
});

describe('deductQuota references', () => {
  it('the same reference twice deducts once and returns the first audit', async () => {
    await grant(app, 'd-ref', 100, DEC);
    const first = await deduct({ userId: 'd-ref', amount: 10, reason: 'invoice', reference: 'inv-1' });
    const second = await deduct({ userId: 'd-ref', amount: 10, reason: 'invoice again', reference: 'inv-1' });
    expect(first.errors).toBeUndefined();
    expect(second.data!.deductQuota).toEqual(first.data!.deductQuota);
    expect(app.simulator.getUser('d-ref').total).toBe(9_000);
    expect((await auditsOf(app, 'd-ref')).filter((audit) => audit.operation === 'DEDUCT')).toHaveLength(1);
  });

  it('the same reference with another amount or another user is a CONFLICT, nothing changed', async () => {
    await grant(app, 'd-ref-other', 100, DEC);
    const before = await ledgerSnapshot(app, 'd-ref');
    const beforeOther = await ledgerSnapshot(app, 'd-ref-other');
    expect(errorCode(await deduct({ userId: 'd-ref', amount: 11, reason: 'r', reference: 'inv-1' }))).toBe('CONFLICT');
    expect(errorCode(await deduct({ userId: 'd-ref-other', amount: 10, reason: 'r', reference: 'inv-1' }))).toBe(
      'CONFLICT',
    );
    expect(await ledgerSnapshot(app, 'd-ref')).toEqual(before);
    expect(await ledgerSnapshot(app, 'd-ref-other')).toEqual(beforeOther);
  });

  it('10 concurrent deductions with one reference deduct once and all return the same audit', async () => {
    await grant(app, 'd-race', 100, DEC);
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => deduct({ userId: 'd-race', amount: 7, reason: 'r', reference: 'race-1' })),
    );
    const ids = new Set(responses.map((response) => response.data?.deductQuota.id));
    expect(responses.every((response) => response.errors === undefined)).toBe(true);
    expect(ids.size).toBe(1);
    expect(app.simulator.getUser('d-race').total).toBe(9_300);
  });

  it('concurrent deductions for different users with one reference: one wins, the others get CONFLICT', async () => {
    const racers = ['d-race-a', 'd-race-b', 'd-race-c'];
    for (const id of racers) await grant(app, id, 50, DEC);
    const responses = await Promise.all(
      racers.map((userId) => deduct({ userId, amount: 5, reason: 'r', reference: 'race-shared' })),
    );
    const winners = responses.filter((response) => response.errors === undefined);
    expect(winners).toHaveLength(1);
    expect(responses.filter((response) => errorCode(response) === 'CONFLICT')).toHaveLength(2);
    const totals = racers.map((id) => app.simulator.getUser(id).total).sort();
    expect(totals).toEqual([4_500, 5_000, 5_000]);
  });

  it('many concurrent deductions for one user never overdraw', async () => {
    await grant(app, 'd-race', 7, JAN); // d-race now has 93 + 7 = 100 available
    const responses = await Promise.all(
      Array.from({ length: 15 }, (_, index) =>
        deduct({ userId: 'd-race', amount: 10, reason: 'burst', reference: `burst-${index}` }),
      ),
    );
    expect(responses.filter((response) => response.errors === undefined)).toHaveLength(10);
    expect(responses.filter((response) => errorCode(response) === 'INSUFFICIENT_QUOTA')).toHaveLength(5);
    expect(app.simulator.getUser('d-race').total).toBe(0);
    expect(await batchesOf(app, 'd-race')).toEqual([]);
  });
});
