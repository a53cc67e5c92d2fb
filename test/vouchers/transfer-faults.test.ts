import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  APR,
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  expectCode,
  grant,
  issueVoucher,
  MAY,
  redemptionCount,
  START,
  snapshot,
  testClock,
  transferIn,
  transferOut,
  uniqueId,
} from './voucher-support.js';

/**
 * Gateway faults at each step of a transfer (SPEC §5, §8): before the database work (the used read),
 * after it and before commit (the total write), and applied-but-answer-lost. Afterwards the ledger and
 * the gateway agree (the invariants run after every test) and nothing is applied twice.
 */

const clock = testClock();
let app: TestApp;
/** 1 attempt + AIGATEWAY_RETRIES (3 by default): a fault this many times defeats every retry. */
const ALL_ATTEMPTS = 4;

beforeAll(async () => {
  app = await startTestApp({ label: 'vouchers-faults', clock });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  clock.set(START);
  await checkInvariants(app);
});

async function scene() {
  const giver = uniqueId('giver');
  const receiver = uniqueId('receiver');
  await addDirectoryUsers(app, [{ id: giver, githubStar: 'zgsm-ai.zgsm' }, { id: receiver }]);
  await grant(app, giver, 100, APR);
  await grant(app, giver, 100, MAY);
  await grant(app, receiver, 7, MAY);
  return {
    giver,
    receiver,
    giverToken: await app.token({ userId: giver }),
    receiverToken: await app.token({ userId: receiver }),
  };
}

describe('transferOut under gateway faults', () => {
  it('the used read fails (before any database change): GATEWAY_UNAVAILABLE, nothing changed', async () => {
    const s = await scene();
    const before = await snapshot(app, [s.giver, s.receiver]);
    app.simulator.setFault('getUsed', { kind: 'status', status: 503 });
    app.simulator.clearCalls();
    expectCode(
      await transferOut(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]),
      'GATEWAY_UNAVAILABLE',
    );
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(app.simulator.calls({ route: 'setTotal' })).toEqual([]);
  });

  it('the total write is refused (after the database work, before commit): all rolled back', async () => {
    const s = await scene();
    const before = await snapshot(app, [s.giver, s.receiver]);
    app.simulator.setFault('setTotal', { kind: 'status', status: 500 });
    expectCode(
      await transferOut(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]),
      'GATEWAY_UNAVAILABLE',
    );
    app.simulator.clearFaults();
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    // The same transfer then goes through once.
    await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    expect(await batchesOf(app, s.giver)).toEqual([
      { amount: 90, expiry: APR },
      { amount: 100, expiry: MAY },
    ]);
  });

  it('the total write is applied but its answer lost once: the retry settles it, applied once', async () => {
    const s = await scene();
    app.simulator.setFault('setTotal', { kind: 'applied-then-drop', times: 1 });
    app.simulator.clearCalls();
    await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    expect(app.simulator.calls({ route: 'setTotal' }).map((call) => call.params.quota)).toEqual(['190', '190']);
    expect(app.simulator.getUser(s.giver).total).toBe(19_000);
    expect((await auditsOf(app, s.giver)).filter((audit) => audit.operation === 'TRANSFER_OUT')).toHaveLength(1);
  });

  it('the total write is applied but every answer lost: rolled back, and the gateway total restored', async () => {
    const s = await scene();
    const before = await snapshot(app, [s.giver, s.receiver]);
    app.simulator.setFault('setTotal', { kind: 'applied-then-drop', times: ALL_ATTEMPTS });
    app.simulator.clearCalls();
    expectCode(
      await transferOut(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]),
      'GATEWAY_UNAVAILABLE',
    );
    // Four applied attempts of 190, then the restoring write of the committed 200.
    expect(app.simulator.calls({ route: 'setTotal' }).map((call) => call.params.quota)).toEqual([
      '190',
      '190',
      '190',
      '190',
      '200',
    ]);
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
  });
});

describe('transferIn under gateway faults', () => {
  it('the total write is refused: GATEWAY_UNAVAILABLE and the voucher stays unredeemed', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    const before = await snapshot(app, [s.giver, s.receiver]);
    app.simulator.setFault('setTotal', { kind: 'status', status: 500 });
    expectCode(await transferIn(app, s.receiverToken, code), 'GATEWAY_UNAVAILABLE');
    app.simulator.clearFaults();
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(await redemptionCount(app, code)).toBe(0);
    // A proxy's 502 (the gateway may have applied it) on every attempt: the same, and the total restored.
    app.simulator.setFault('setTotal', { kind: 'status', status: 502, times: ALL_ATTEMPTS });
    expectCode(await transferIn(app, s.receiverToken, code), 'GATEWAY_UNAVAILABLE');
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(await redemptionCount(app, code)).toBe(0);

    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result).toMatchObject({ status: 'SUCCESS', amount: 10 });
    expect(await batchesOf(app, s.receiver)).toEqual([
      { amount: 10, expiry: APR },
      { amount: 7, expiry: MAY },
    ]);
  });

  it('applied but the answer lost once: the retry settles it, credited once, a second call is ALREADY_REDEEMED', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    app.simulator.setFault('setTotal', { kind: 'applied-then-drop', times: 1 });
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('ALREADY_REDEEMED');
    expect(app.simulator.getUser(s.receiver).total).toBe(1700);
    expect((await auditsOf(app, s.receiver)).filter((audit) => audit.operation === 'TRANSFER_IN')).toHaveLength(1);
  });

  it('applied but every answer lost: rolled back, total restored, and the voucher redeems later exactly once', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    const before = await snapshot(app, [s.giver, s.receiver]);
    app.simulator.setFault('setTotal', { kind: 'applied-then-drop', times: ALL_ATTEMPTS });
    expectCode(await transferIn(app, s.receiverToken, code), 'GATEWAY_UNAVAILABLE');
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(app.simulator.getUser(s.receiver).total).toBe(700);

    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    expect(app.simulator.getUser(s.receiver).total).toBe(1700);
  });

  it('the gateway down after commit only loses the best-effort star push', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: APR }]);
    app.simulator.setFault('setStarredProjects', { kind: 'drop' });
    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result.status).toBe('SUCCESS');
    expect(app.simulator.getEmployee(s.receiver).starredProjects).toBe('');
    expect(await redemptionCount(app, code)).toBe(1);
  });
});
