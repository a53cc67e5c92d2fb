import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import {
  APR,
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  em,
  gatewayWrites,
  grant,
  issueVoucher,
  MAY,
  redemptionCount,
  START,
  testClock,
  transferIn,
  transferOut,
  uniqueId,
} from './voucher-support.js';

/** Exactly-once and no-overdraft under concurrency (SPEC §5), over real HTTP against one server. */

const clock = testClock();
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'vouchers-race', clock });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  clock.set(START);
  await checkInvariants(app);
});

describe('concurrent redemptions', () => {
  it('50 parallel transferIn of one voucher: one credit, 49 ALREADY_REDEEMED with the same outcome', async () => {
    const giver = uniqueId('giver');
    const receiver = uniqueId('receiver');
    await addDirectoryUsers(app, [{ id: giver, githubStar: 'zgsm-ai.zgsm' }, { id: receiver }]);
    await grant(app, giver, 100, MAY);
    const giverToken = await app.token({ userId: giver });
    const receiverToken = await app.token({ userId: receiver });
    const code = await issueVoucher(app, giverToken, receiver, [{ amount: 33.33, expiryDate: MAY }]);
    app.simulator.clearCalls();

    const responses = await Promise.all(Array.from({ length: 50 }, () => transferIn(app, receiverToken, code)));
    for (const response of responses) expect(response.errors).toBeUndefined();
    const results = responses.map((response) => response.data!.transferIn);
    const statuses = results.map((result) => result.status);
    expect(statuses.filter((status) => status === 'SUCCESS')).toHaveLength(1);
    expect(statuses.filter((status) => status === 'ALREADY_REDEEMED')).toHaveLength(49);
    for (const result of results) {
      expect(result.amount).toBe(33.33);
      expect(result.items).toEqual([
        { amount: 33.33, expiryDate: MAY, success: true, isExpired: false, failureReason: null },
      ]);
    }

    expect(await batchesOf(app, receiver)).toEqual([{ amount: 33.33, expiry: MAY }]);
    expect((await auditsOf(app, receiver)).map((audit) => audit.operation)).toEqual(['TRANSFER_IN']);
    expect(await redemptionCount(app, code)).toBe(1);
    expect(app.simulator.getUser(receiver).total).toBe(3333);
    // One gateway total write and one star push: the losers touched nothing.
    expect(gatewayWrites(app).map(([route]) => route)).toEqual(['setTotal', 'setStarredProjects']);
  });
});

describe('a redemption losing the race inside the lock', () => {
  it('gets ALREADY_REDEEMED with the original outcome from the database, not from a pre-check', async () => {
    const giver = uniqueId('giver');
    const receiver = uniqueId('receiver');
    await addDirectoryUsers(app, [{ id: giver }, { id: receiver }]);
    await grant(app, giver, 10, MAY);
    const code = await issueVoucher(app, await app.token({ userId: giver }), receiver, [
      { amount: 4, expiryDate: MAY },
    ]);
    const receiverToken = await app.token({ userId: receiver });

    // Hold the receiver's ledger lock so both redemptions queue on it (the calls start inside the
    // holder, so neither can take the lock first); leaving the holder releases it.
    let calls: ReturnType<typeof transferIn>[] = [];
    await app.app.services.ledger.withUserLedger(em(app), receiver, async () => {
      calls = [transferIn(app, receiverToken, code), transferIn(app, receiverToken, code)];
      await advisoryLockWaiters(em(app), 2);
    });
    const results = (await Promise.all(calls)).map((response) => response.data!.transferIn);
    expect(results.map((result) => result.status).sort()).toEqual(['ALREADY_REDEEMED', 'SUCCESS']);
    const [winner, loser] = results[0]!.status === 'SUCCESS' ? results : [results[1]!, results[0]!];
    expect(loser).toEqual({
      ...winner,
      status: 'ALREADY_REDEEMED',
      message: expect.stringMatching(/already redeemed/),
    });
    expect(await batchesOf(app, receiver)).toEqual([{ amount: 4, expiry: MAY }]);
  });
});

describe('concurrent transfers out of one giver', () => {
  it('20 parallel transfers of a tenth each, interleaved with grants: no overdraft, no negative batch', async () => {
    const giver = uniqueId('giver');
    const receiver = uniqueId('receiver');
    await addDirectoryUsers(app, [{ id: giver }, { id: receiver }]);
    await grant(app, giver, 1000, APR);
    const giverToken = await app.token({ userId: giver });
    const receiverToken = await app.token({ userId: receiver });

    const transfers = Array.from({ length: 20 }, () =>
      transferOut(app, giverToken, receiver, [{ amount: 100, expiryDate: APR }]),
    );
    // Five grants of 100 into the same batch land while the transfers run.
    const grants = Array.from({ length: 5 }, () => grant(app, giver, 100, APR));
    const [responses] = await Promise.all([Promise.all(transfers), Promise.all(grants)]);

    const succeeded = responses.filter((response) => response.errors === undefined);
    const refused = responses.filter((response) => response.errors !== undefined);
    // Too little left, or the batch emptied (and so deleted) before a grant re-created it.
    for (const response of refused) expect(['INSUFFICIENT_QUOTA', 'QUOTA_NOT_FOUND']).toContain(errorCode(response));
    // 1000 to start, 500 granted meanwhile: at least 10 and at most 15 transfers of 100 fit.
    expect(succeeded.length).toBeGreaterThanOrEqual(10);
    expect(succeeded.length).toBeLessThanOrEqual(15);

    const left = 1500 - 100 * succeeded.length;
    expect(await batchesOf(app, giver)).toEqual(left > 0 ? [{ amount: left, expiry: APR }] : []);
    expect(app.simulator.getUser(giver).total).toBe(left * 100);
    const outs = (await auditsOf(app, giver)).filter((audit) => audit.operation === 'TRANSFER_OUT');
    expect(outs).toHaveLength(succeeded.length);

    // Every voucher is distinct and redeems once.
    const codes = succeeded.map((response) => response.data!.transferOut.voucherCode);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) {
      expect((await transferIn(app, receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    }
    expect(await batchesOf(app, receiver)).toEqual([{ amount: 100 * succeeded.length, expiry: APR }]);
  });

  it('parallel transfers in both directions between two users never deadlock or overdraw', async () => {
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    await addDirectoryUsers(app, [{ id: alice }, { id: bob }]);
    await grant(app, alice, 50, MAY);
    await grant(app, bob, 50, MAY);
    const tokens = { [alice]: await app.token({ userId: alice }), [bob]: await app.token({ userId: bob }) };

    // Each sends 10 to the other and redeems at once, ten rounds in parallel.
    const round = async (from: string, to: string) => {
      const out = await transferOut(app, tokens[from]!, to, [{ amount: 10, expiryDate: MAY }]);
      if (out.errors) return errorCode(out);
      const redeemed = await transferIn(app, tokens[to]!, out.data!.transferOut.voucherCode);
      return redeemed.data!.transferIn.status;
    };
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? round(alice, bob) : round(bob, alice))),
    );
    for (const outcome of outcomes) expect(['SUCCESS', 'INSUFFICIENT_QUOTA', 'QUOTA_NOT_FOUND']).toContain(outcome);
    const total = (await batchesOf(app, alice)).concat(await batchesOf(app, bob)).reduce((sum, b) => sum + b.amount, 0);
    expect(total).toBe(100);
  });
});
