import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import {
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  EXPIRY_SCENE,
  em,
  grant,
  ledgerSnapshot,
  setUpExpiryUser,
  testClock,
} from './quota-support.js';

/**
 * Monthly expiry and quota sync (SPEC §5 "Monthly expiry" 1–3, "Sync quotas", §8 the one delta),
 * with a settable clock in Asia/Shanghai and the simulator's faults.
 */

const { GRANT_TIME, RUN_TIME, EXPIRED, VALID } = EXPIRY_SCENE;

const clock = testClock(GRANT_TIME);
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-expiry', clock });
});
afterAll(async () => {
  await app?.stop();
});
beforeEach(() => {
  clock.set(GRANT_TIME);
});
afterEach(async () => {
  app.simulator.clearFaults();
  await checkInvariants(app);
});

function setUpUser(userId: string, expired: number[], valid: number[], used: number): Promise<void> {
  return setUpExpiryUser(app, clock, userId, expired, valid, used);
}

function runExpiry(options: Parameters<TestApp['app']['services']['quotaExpiry']['runMonthlyExpiry']>[0] = {}) {
  return app.app.services.quotaExpiry.runMonthlyExpiry(options);
}

function lastAudit(audits: Awaited<ReturnType<typeof auditsOf>>) {
  return audits.at(-1)!;
}

describe('monthly expiry: the worked examples of SPEC §5', () => {
  // expired | still valid | total/used before → total after, EXPIRE amount
  const examples = [
    { user: 'ex-1', expired: [100], valid: [], used: 30, total: 0, expire: -100 },
    { user: 'ex-2', expired: [100, 80], valid: [60], used: 120, total: 60, expire: -180 },
    { user: 'ex-3', expired: [60], valid: [100, 80], used: 150, total: 90, expire: -150 },
    { user: 'ex-4', expired: [150, 300], valid: [500, 100], used: 610, total: 440, expire: -610 },
    { user: 'ex-5', expired: [100, 150], valid: [200, 120], used: 0, total: 320, expire: -250 },
  ];

  it('settles each user: expired batches out, consumption settled, used reset, total = Σ VALID', async () => {
    for (const example of examples) await setUpUser(example.user, example.expired, example.valid, example.used);
    for (const example of examples) {
      const before = [...example.expired, ...example.valid].reduce((sum, amount) => sum + amount, 0);
      expect(app.simulator.getUser(example.user).total).toBe(before * 100);
    }
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    const result = await runExpiry();
    expect(result).toMatchObject({ yearMonth: '2026-11', failed: 0, failures: [] });
    expect(result.settledUsers).toBeGreaterThanOrEqual(5);

    for (const example of examples) {
      expect(app.simulator.getUser(example.user), example.user).toEqual({ total: example.total * 100, used: 0 });
      const audit = lastAudit(await auditsOf(app, example.user));
      expect(audit.operation, example.user).toBe('EXPIRE');
      expect(audit.amount, example.user).toBe(example.expire);
      const resets = app.simulator.calls({ route: 'addUsed' }).filter((call) => call.params.user_id === example.user);
      expect(
        resets.map((call) => call.params.value),
        example.user,
      ).toEqual(example.used > 0 ? [String(-example.used)] : []);
    }
  });

  it('leaves the batches as the settlement says (example 3: 60 | 100+80, used 150)', async () => {
    expect(await batchesOf(app, 'ex-3')).toEqual([
      { amount: 60, expiry: EXPIRED[0], status: 'EXPIRED' },
      { amount: 10, expiry: VALID[0], status: 'VALID' },
      { amount: 80, expiry: VALID[1], status: 'VALID' },
    ]);
    const audit = lastAudit(await auditsOf(app, 'ex-3'));
    expect(audit.reason).toMatch(/monthly expiry: 1 batch expired/);
    expect(audit.details).toEqual({
      operation: 'EXPIRE',
      summary: {
        totalAmount: 150,
        totalItems: 2,
        successfulItems: 1,
        failedItems: 0,
        expiredItems: 1,
        earliestExpiryDate: EXPIRED[0],
      },
      items: [
        { amount: 60, expiryDate: EXPIRED[0], status: 'EXPIRED', originalQuota: 60, newQuota: 0 },
        { amount: 90, expiryDate: VALID[0], status: 'SUCCESS', originalQuota: 100, newQuota: 10 },
      ],
    });
    // Example 4: 150+300 expired, 160 of the 500 settled (→ 340), the 100 untouched.
    expect(await batchesOf(app, 'ex-4')).toEqual([
      { amount: 150, expiry: EXPIRED[0], status: 'EXPIRED' },
      { amount: 300, expiry: EXPIRED[1], status: 'EXPIRED' },
      { amount: 340, expiry: VALID[0], status: 'VALID' },
      { amount: 100, expiry: VALID[1], status: 'VALID' },
    ]);
  });

  it("records last month's usage for users with VALID batches and used > 0", async () => {
    const response = await app.gql<{ monthlyUsage: unknown[] }>(
      'query($u: String!) { monthlyUsage(userId: $u) { userId yearMonth usedQuota recordedAt } }',
      { u: 'ex-4' },
      { token: app.adminToken },
    );
    expect(response.data!.monthlyUsage).toEqual([
      { userId: 'ex-4', yearMonth: '2026-11', usedQuota: 610, recordedAt: '2026-11-30T16:00:00.000Z' },
    ]);
    const none = await app.gql<{ monthlyUsage: unknown[] }>(
      '{ monthlyUsage(userId: "ex-5") { yearMonth } }',
      {},
      {
        token: app.adminToken,
      },
    );
    expect(none.data!.monthlyUsage).toEqual([]);
    expect(
      errorCode(await app.gql('{ monthlyUsage(userId: "ex-4") { yearMonth } }', {}, { token: app.userToken })),
    ).toBe('FORBIDDEN');
    expect(errorCode(await app.gql('{ monthlyUsage(userId: "") { yearMonth } }', {}, { token: app.adminToken }))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('a second run finds nothing to do: no gateway writes, no audits, no new usage records', async () => {
    clock.set(RUN_TIME);
    const auditCount = async () =>
      Number((await em(app).execute<{ n: string }[]>('select count(*) as n from quota_audit'))[0]!.n);
    const audits = await auditCount();
    // Consumption during the new month must not overwrite the month that ended.
    app.simulator.setUser('ex-3', { used: 500 });
    app.simulator.clearCalls();
    const result = await runExpiry();
    expect(app.simulator.calls({ method: 'POST' })).toEqual([]);
    expect(await auditCount()).toBe(audits);
    expect(result).toMatchObject({ settledUsers: 0, usageRecorded: 0, failed: 0 });
    expect(result.processed).toBe(result.succeeded);
    app.simulator.setUser('ex-3', { used: 0 });
  });
});

describe('monthly expiry: boundaries, chunks, progress', () => {
  const BOUNDARY = '2026-12-10T15:59:59.000Z';

  it('expires a batch only once its expiry is in the past (23:59:59 in the configured zone)', async () => {
    await grant(app, 'edge', 10, BOUNDARY);
    clock.set(BOUNDARY);
    await runExpiry();
    expect(await batchesOf(app, 'edge')).toEqual([{ amount: 10, expiry: BOUNDARY, status: 'VALID' }]);
    clock.set('2026-12-10T16:00:00.000Z');
    await runExpiry();
    expect(await batchesOf(app, 'edge')).toEqual([{ amount: 10, expiry: BOUNDARY, status: 'EXPIRED' }]);
    expect(app.simulator.getUser('edge').total).toBe(0);
  });

  it('walks users in chunks and reports progress through the callbacks', async () => {
    for (const id of ['chunk-a', 'chunk-b', 'chunk-c', 'chunk-d', 'chunk-e']) await setUpUser(id, [5], [5], 1);
    const [count] = await em(app).execute<{ n: string }[]>(
      `select count(distinct user_id) as n from quota where status = 'VALID'`,
    );
    clock.set(RUN_TIME);
    const seen = { processed: 0, succeeded: 0, failed: 0 };
    // Users whose gateway used had been asked for when the first user was reported.
    let askedAtFirstReport: number | null = null;
    app.simulator.clearCalls();
    const result = await runExpiry({
      chunkSize: 2,
      progress: {
        processed: (n = 1) => {
          askedAtFirstReport ??= app.simulator.calls({ route: 'getUsed' }).length;
          seen.processed += n;
        },
        succeeded: (n = 1) => {
          seen.succeeded += n;
        },
        failed: (n = 1) => {
          seen.failed += n;
        },
      },
    });
    expect(result.processed).toBe(Number(count!.n));
    expect(seen).toEqual({ processed: result.processed, succeeded: result.succeeded, failed: result.failed });
    // In one chunk every user's used would be read before anyone is reported. In chunks of 2 the first
    // chunk is reported when at most it and the next one (read ahead) have been asked: 4 of 5 or more.
    expect(app.simulator.calls({ route: 'getUsed' })).toHaveLength(result.processed);
    expect(askedAtFirstReport).toBeGreaterThanOrEqual(2);
    expect(askedAtFirstReport).toBeLessThanOrEqual(4);
    expect(askedAtFirstReport).toBeLessThan(result.processed);
    // The 1 used is attributed to the expired batch: the valid 5 stays whole.
    for (const id of ['chunk-a', 'chunk-e']) expect(app.simulator.getUser(id)).toEqual({ total: 500, used: 0 });
  });

  it('stops before the next user once aborted', async () => {
    await setUpUser('aborted', [5], [], 0);
    clock.set(RUN_TIME);
    const controller = new AbortController();
    controller.abort();
    const result = await runExpiry({ signal: controller.signal });
    expect(result.processed).toBe(0);
    expect(await batchesOf(app, 'aborted')).toEqual([{ amount: 5, expiry: EXPIRED[0], status: 'VALID' }]);
    await runExpiry();
  });
});

describe('monthly expiry: a gateway fault at each step', () => {
  it('reading used fails: the user is untouched and counted failed', async () => {
    await setUpUser('f-read', [40], [60], 50);
    const before = await ledgerSnapshot(app, 'f-read');
    clock.set(RUN_TIME);
    app.simulator.setFault('getUsed', { kind: 'status', status: 503 });
    const result = await runExpiry();
    expect(result.failures.map((failure) => failure.userId)).toContain('f-read');
    expect(await ledgerSnapshot(app, 'f-read')).toEqual(before);
    app.simulator.clearFaults();
    await runExpiry();
    expect(app.simulator.getUser('f-read')).toEqual({ total: 5_000, used: 0 });
  });

  it('resetting used answers 500: rolled back, user untouched, settled by the next run', async () => {
    await setUpUser('f-500', [100, 80], [60], 120);
    const before = await ledgerSnapshot(app, 'f-500');
    clock.set(RUN_TIME);
    app.simulator.clearCalls();
    app.simulator.setFault('addUsed', { kind: 'status', status: 500 });
    const result = await runExpiry();
    expect(result.failed).toBe(1);
    expect(result.failures).toEqual([{ userId: 'f-500', reason: expect.stringMatching(/addUsed failed/) }]);
    expect(await ledgerSnapshot(app, 'f-500')).toEqual(before);
    expect(app.simulator.calls({ route: 'setTotal' }).filter((call) => call.params.user_id === 'f-500')).toEqual([]);

    app.simulator.clearFaults();
    const next = await runExpiry();
    expect(next.failed).toBe(0);
    expect(app.simulator.getUser('f-500')).toEqual({ total: 6_000, used: 0 });
    expect(lastAudit(await auditsOf(app, 'f-500')).amount).toBe(-180);
  });

  it('resetting used is applied but the answer is lost: not retried, user left for a human and the next run', async () => {
    await setUpUser('f-lost', [60], [100, 80], 150);
    const before = await ledgerSnapshot(app, 'f-lost');
    clock.set(RUN_TIME);
    app.simulator.clearCalls();
    app.simulator.setFault('addUsed', { kind: 'applied-then-drop', times: 1 });
    const result = await runExpiry();
    expect(result.failures).toEqual([{ userId: 'f-lost', reason: expect.stringMatching(/addUsed failed/) }]);
    // One attempt only: a delta that may have arrived is never repeated.
    expect(app.simulator.calls({ route: 'addUsed' })).toHaveLength(1);
    // The ledger is untouched; the gateway applied the reset (which is why it needs a look).
    const after = (await ledgerSnapshot(app, 'f-lost')) as { batches: unknown; audits: unknown };
    const expected = before as { batches: unknown; audits: unknown };
    expect(after.batches).toEqual(expected.batches);
    expect(after.audits).toEqual(expected.audits);
    expect(app.simulator.getUser('f-lost')).toEqual({ total: 24_000, used: 0 });
    // Next run: nothing consumed as far as the gateway now says; expired batch goes, the rest stays.
    await runExpiry();
    expect(app.simulator.getUser('f-lost')).toEqual({ total: 18_000, used: 0 });
  });

  it('setting the total fails after used was reset: settlement committed, user failed, quota sync repairs', async () => {
    await setUpUser('f-total', [60], [100, 80], 150);
    clock.set(RUN_TIME);
    app.simulator.setFault('setTotal', { kind: 'status', status: 500 });
    const result = await runExpiry();
    app.simulator.clearFaults();
    expect(result.failures).toEqual([
      { userId: 'f-total', reason: expect.stringMatching(/settled, but the gateway total was not set/) },
    ]);
    expect(result.settledUsers).toBe(1);
    expect(await batchesOf(app, 'f-total')).toEqual([
      { amount: 60, expiry: EXPIRED[0], status: 'EXPIRED' },
      { amount: 10, expiry: VALID[0], status: 'VALID' },
      { amount: 80, expiry: VALID[1], status: 'VALID' },
    ]);
    expect(lastAudit(await auditsOf(app, 'f-total')).amount).toBe(-150);
    // used was reset once; the total is stale until sync.
    expect(app.simulator.getUser('f-total')).toEqual({ total: 24_000, used: 0 });
    await expect(assertLedgerInvariants(em(app), app.simulator)).rejects.toThrow(/f-total: gateway total/);

    // A second expiry run does not touch it again (nothing expired left).
    app.simulator.clearCalls();
    await runExpiry();
    expect(app.simulator.calls({ method: 'POST' })).toEqual([]);

    const sync = await app.app.services.quotaSync.syncQuotas();
    expect(sync).toMatchObject({ corrected: 1, failed: 0 });
    expect(app.simulator.getUser('f-total')).toEqual({ total: 9_000, used: 0 });
  });
});

describe('quota sync', () => {
  it('sets the total where it differs from Σ VALID, also to 0 for a ledger with nothing valid left', async () => {
    await grant(app, 'sync-a', 10, VALID[0]!);
    await grant(app, 'sync-b', 20, VALID[0]!);
    app.simulator.setUser('sync-a', { total: 99_999 });
    app.simulator.setUser('sync-b', { total: 0 });
    app.simulator.setUser('ex-1', { total: 1_234 }); // all of ex-1's batches expired: should be 0
    app.simulator.setUser('stranger', { total: 777 }); // not the ledger's user: left alone
    app.simulator.clearCalls();
    const result = await app.app.services.quotaSync.syncQuotas({ chunkSize: 3 });
    expect(result).toMatchObject({ corrected: 3, failed: 0 });
    expect(result.processed).toBe(result.succeeded);
    expect(app.simulator.getUser('sync-a').total).toBe(1_000);
    expect(app.simulator.getUser('sync-b').total).toBe(2_000);
    expect(app.simulator.getUser('ex-1').total).toBe(0);
    expect(app.simulator.getUser('stranger').total).toBe(777);
    expect(
      app.simulator
        .calls({ method: 'POST' })
        .map((call) => call.params.user_id)
        .sort(),
    ).toEqual(['ex-1', 'sync-a', 'sync-b']);

    app.simulator.clearCalls();
    const again = await app.app.services.quotaSync.syncQuotas();
    expect(again.corrected).toBe(0);
    expect(app.simulator.calls({ method: 'POST' })).toEqual([]);
  });

  it('counts a user whose gateway cannot be read as failed and goes on', async () => {
    app.simulator.setFault('getTotal', { kind: 'status', status: 503, times: 4 });
    const result = await app.app.services.quotaSync.syncQuotas();
    expect(result.failed).toBe(1);
    expect(result.succeeded).toBe(result.processed - 1);
  });
});

describe('monthly usage over months', () => {
  it('lists usage newest month first', async () => {
    await addDirectoryUsers(app, [{ id: 'ex-3' }]);
    // ex-3 holds 10 (31 Dec) + 80 (31 Jan); consume 5 in December, run on 1 Jan 00:00 in the zone.
    app.simulator.setUser('ex-3', { used: 500 });
    clock.set('2026-12-31T16:00:00.000Z');
    await runExpiry();
    const response = await app.gql<{ monthlyUsage: { yearMonth: string; usedQuota: number }[] }>(
      '{ monthlyUsage(userId: "ex-3") { yearMonth usedQuota } }',
      {},
      { token: app.adminToken },
    );
    expect(response.data!.monthlyUsage).toEqual([
      { yearMonth: '2026-12', usedQuota: 5 },
      { yearMonth: '2026-11', usedQuota: 150 },
    ]);
    // The 31 Dec batch expired with 5 of it consumed; 80 left.
    expect(app.simulator.getUser('ex-3')).toEqual({ total: 8_000, used: 0 });
  });
});
