import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VoucherCodec } from '../../src/modules/vouchers/voucher-codec.js';
import { startTestApp, TEST_VOUCHER_KEY, type TestApp } from '../support/app.js';
import {
  addDirectoryUsers,
  checkInvariants,
  em,
  grant,
  issueVoucher,
  MAY,
  START,
  testClock,
  transferIn,
  uniqueId,
  ZONE,
} from './voucher-support.js';

/**
 * A server configured otherwise than the default test server:
 * - employee sync on: the starred-projects push after a redemption is keyed by the receiver's employee
 *   key (SPEC §5, §6), the employee number when the user has an HR record, else the user id (with sync
 *   off it is always the user id: transfer-in.test.ts);
 * - a rotated voucher key: vouchers signed with a VOUCHER_PREVIOUS_KEYS key stay redeemable, new ones
 *   are signed with the new VOUCHER_SIGNING_KEY.
 */

const clock = testClock();
const NEW_KEY = 'the-new-voucher-signing-key-of-32-bytes-or-more';
const RETIRED_KEY = 'an-older-retired-key-still-accepted-32-bytes';
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({
    label: 'vouchers-config',
    clock,
    env: {
      HR_SYNC_ENABLED: 'true',
      VOUCHER_SIGNING_KEY: NEW_KEY,
      VOUCHER_PREVIOUS_KEYS: `${RETIRED_KEY},${TEST_VOUCHER_KEY}`,
    },
  });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  clock.set(START);
  await checkInvariants(app);
});

async function redeemFrom(giverStars: string, receiver: string): Promise<void> {
  const giver = uniqueId('giver');
  await addDirectoryUsers(app, [{ id: giver, githubStar: giverStars }]);
  await grant(app, giver, 10, MAY);
  const code = await issueVoucher(app, await app.token({ userId: giver }), receiver, [{ amount: 1, expiryDate: MAY }]);
  app.simulator.clearCalls();
  const result = await transferIn(app, await app.token({ userId: receiver }), code);
  expect(result.data!.transferIn.status).toBe('SUCCESS');
}

function starPushes(): [string | undefined, string | undefined][] {
  return app.simulator
    .calls({ route: 'setStarredProjects' })
    .map((call) => [call.params.employee_number, call.params.starred_projects]);
}

describe('star push key with employee sync enabled', () => {
  it('uses the employee number of a receiver with an HR record', async () => {
    const receiver = uniqueId('receiver');
    const number = `E${Date.now()}`;
    await addDirectoryUsers(app, [{ id: receiver, employeeNumber: number }]);
    await em(app).execute(
      `insert into employee_department (employee_number, username, dept_full_level_names) values (?, ?, ?)`,
      [number, 'Receiver', 'Company,R&D'],
    );
    await redeemFrom('zgsm-ai.zgsm', receiver);
    expect(starPushes()).toEqual([[number, 'zgsm-ai.zgsm']]);
    expect(app.simulator.getEmployee(number).starredProjects).toBe('zgsm-ai.zgsm');
  });

  it('falls back to the user id without an HR record (employee number unknown to HR, or none)', async () => {
    const orphan = uniqueId('orphan');
    await addDirectoryUsers(app, [{ id: orphan, employeeNumber: 'NOT-IN-HR' }]);
    await redeemFrom('a.b,c.d', orphan);
    expect(starPushes()).toEqual([[orphan, 'a.b,c.d']]);

    const plain = uniqueId('plain');
    await addDirectoryUsers(app, [{ id: plain }]);
    await redeemFrom('a.b', plain);
    expect(starPushes()).toEqual([[plain, 'a.b']]);
  });

  it('pushes nothing when the giver stars nothing', async () => {
    const receiver = uniqueId('receiver');
    await addDirectoryUsers(app, [{ id: receiver }]);
    await redeemFrom(' , ', receiver);
    expect(starPushes()).toEqual([]);
  });
});

describe('voucher key rotation', () => {
  it('redeems vouchers signed with a previous key and signs new ones with the current key', async () => {
    const giver = uniqueId('giver');
    const receiver = uniqueId('receiver');
    await addDirectoryUsers(app, [{ id: giver }, { id: receiver }]);
    await grant(app, giver, 10, MAY);
    const receiverToken = await app.token({ userId: receiver });

    const old = new VoucherCodec({ signingKey: TEST_VOUCHER_KEY }, ZONE);
    const current = new VoucherCodec({ signingKey: NEW_KEY }, ZONE);
    const code = await issueVoucher(app, await app.token({ userId: giver }), receiver, [
      { amount: 3, expiryDate: MAY },
    ]);
    const payload = current.decode(code, clock.now());
    expect(() => old.decode(code, clock.now())).toThrow(/signature/);

    // The same transfer as an old-key voucher (what the server issued before the rotation).
    const before = old.encode({ ...payload, timestamp: payload.timestamp - 100 });
    expect((await transferIn(app, receiverToken, before)).data!.transferIn.status).toBe('SUCCESS');
    expect((await transferIn(app, receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    const foreign = new VoucherCodec({ signingKey: 'a-key-this-server-never-had-32-bytes!!' }, ZONE);
    const forged = await transferIn(
      app,
      receiverToken,
      foreign.encode({ ...payload, timestamp: payload.timestamp - 200 }),
    );
    expect(forged.errors?.[0]?.extensions?.code).toBe('VOUCHER_INVALID');
  });
});
