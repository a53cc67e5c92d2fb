import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VoucherCodec } from '../../src/modules/vouchers/voucher-codec.js';
import { startTestApp, TEST_VOUCHER_KEY, type TestApp } from '../support/app.js';
import {
  APR,
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  em,
  expectCode,
  gatewayWrites,
  grant,
  MAR,
  MAY,
  START,
  snapshot,
  testClock,
  transferIn,
  transferOut,
  uniqueId,
  ZONE,
} from './voucher-support.js';

/** transferOut (SPEC §5) through the API, on PostgreSQL and the gateway simulator. */

const clock = testClock();
const codec = new VoucherCodec({ signingKey: TEST_VOUCHER_KEY }, ZONE);
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'vouchers-out', clock });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  clock.set(START);
  await checkInvariants(app);
});

interface Scene {
  giver: string;
  receiver: string;
  giverToken: string;
  receiverToken: string;
}

/**
 * A giver with 100@MAR, 100@APR, 100@MAY and 150 used on the gateway: FIFO leaves 0 of MAR, 50 of APR
 * and 100 of MAY (SPEC §5's example). A receiver in the directory.
 */
async function scene(): Promise<Scene> {
  const giver = uniqueId('giver');
  const receiver = uniqueId('receiver');
  await addDirectoryUsers(app, [
    { id: giver, githubStar: ' zgsm-ai.zgsm , openai.gpt-4 ' },
    { id: receiver, employeeNumber: 'E-1' },
  ]);
  await grant(app, giver, 100, MAR);
  await grant(app, giver, 100, APR);
  await grant(app, giver, 100, MAY);
  app.simulator.setUser(giver, { used: 15_000 });
  app.simulator.clearCalls();
  return {
    giver,
    receiver,
    giverToken: await app.token({
      userId: giver,
      name: 'Zhang San',
      extraClaims: { phone: '13800000000', github: 'zhangsan' },
    }),
    receiverToken: await app.token({ userId: receiver }),
  };
}

describe('transferOut: success', () => {
  it('takes FIFO-available quota from the named batches, audits, sets the gateway total and returns a voucher', async () => {
    const s = await scene();
    const response = await transferOut(app, s.giverToken, s.receiver, [
      { amount: 100, expiryDate: MAY },
      { amount: 30, expiryDate: APR },
      // Same batch as the item above, another offset and milliseconds: second precision, summed.
      { amount: 20, expiryDate: '2026-04-30T23:59:59.400+08:00' },
    ]);
    expect(response.errors).toBeUndefined();
    const result = response.data!.transferOut;
    expect(result).toMatchObject({
      receiverId: s.receiver,
      totalAmount: 150,
      items: [
        { amount: 50, expiryDate: APR },
        { amount: 100, expiryDate: MAY },
      ],
    });

    // Batches reduced; the emptied MAY batch is gone.
    expect(await batchesOf(app, s.giver)).toEqual([
      { amount: 100, expiry: MAR },
      { amount: 50, expiry: APR },
    ]);
    expect(app.simulator.getUser(s.giver)).toEqual({ total: 15_000, used: 15_000 });
    expect(gatewayWrites(app)).toEqual([['setTotal', { user_id: s.giver, quota: '150' }]]);

    const audits = await auditsOf(app, s.giver);
    expect(audits.at(-1)).toEqual({
      operation: 'TRANSFER_OUT',
      amount: -150,
      voucherCode: result.voucherCode,
      relatedUser: s.receiver,
      expiry: APR,
      actor: s.giver,
      details: {
        operation: 'TRANSFER_OUT',
        summary: {
          totalAmount: 150,
          totalItems: 2,
          successfulItems: 2,
          failedItems: 0,
          expiredItems: 0,
          earliestExpiryDate: APR,
        },
        items: [
          { amount: 50, expiryDate: APR, status: 'SUCCESS', originalQuota: 100, newQuota: 50 },
          { amount: 100, expiryDate: MAY, status: 'SUCCESS', originalQuota: 100, newQuota: 0 },
        ],
      },
    });

    // The voucher: the old system's payload, giver fields from the token, stars from the directory.
    const payload = codec.decode(result.voucherCode, clock.now());
    expect(payload).toEqual({
      giverId: s.giver,
      giverName: 'Zhang San',
      giverPhone: '13800000000',
      giverGithub: 'zhangsan',
      giverGithubStar: 'zgsm-ai.zgsm,openai.gpt-4',
      receiverId: s.receiver,
      items: [
        { amount: 5000, expiryDate: new Date(APR) },
        { amount: 10_000, expiryDate: new Date(MAY) },
      ],
      timestamp: Math.floor(new Date(START).getTime() / 1000),
    });
    const json = Buffer.from(result.voucherCode, 'base64url').toString('utf8');
    expect(json).toContain('"quota_list":[{"amount":50,"expiry_date":"2026-04-30T23:59:59+08:00"},{"amount":100,');
    // Untouched receiver until redemption.
    expect(await batchesOf(app, s.receiver)).toEqual([]);
  });

  it('fills empty giver fields when the token has no name, phone or github claims', async () => {
    const s = await scene();
    const bare = await app.token({ userId: s.giver });
    const response = await transferOut(app, bare, s.receiver, [{ amount: 1, expiryDate: MAY }]);
    const payload = codec.decode(response.data!.transferOut.voucherCode, clock.now());
    expect([payload.giverName, payload.giverPhone, payload.giverGithub]).toEqual(['', '', '']);
  });

  it('takes the whole available amount and two decimals exactly', async () => {
    const s = await scene();
    const response = await transferOut(app, s.giverToken, s.receiver, [
      { amount: 49.99, expiryDate: APR },
      { amount: 0.01, expiryDate: APR },
    ]);
    expect(response.data!.transferOut.totalAmount).toBe(50);
    expect(await batchesOf(app, s.giver)).toEqual([
      { amount: 100, expiry: MAR },
      { amount: 50, expiry: APR },
      { amount: 100, expiry: MAY },
    ]);
    // Nothing of APR is left to give now.
    expectCode(
      await transferOut(app, s.giverToken, s.receiver, [{ amount: 0.01, expiryDate: APR }]),
      'INSUFFICIENT_QUOTA',
    );
  });

  it('accepts exactly 20 items (the most SPEC §5 allows), summed per expiry', async () => {
    const s = await scene();
    const twenty = Array.from({ length: 20 }, (_, index) => ({ amount: 0.01, expiryDate: index % 2 ? MAY : APR }));
    const response = await transferOut(app, s.giverToken, s.receiver, twenty);
    expect(response.errors).toBeUndefined();
    expect(response.data!.transferOut).toMatchObject({
      totalAmount: 0.2,
      items: [
        { amount: 0.1, expiryDate: APR },
        { amount: 0.1, expiryDate: MAY },
      ],
    });
    expect(await batchesOf(app, s.giver)).toEqual([
      { amount: 100, expiry: MAR },
      { amount: 99.9, expiry: APR },
      { amount: 99.9, expiry: MAY },
    ]);
  });

  it('gives identical transfers in the same second different codes, each redeemable once', async () => {
    const s = await scene();
    const items = [{ amount: 10, expiryDate: MAY }];
    const first = await transferOut(app, s.giverToken, s.receiver, items);
    const second = await transferOut(app, s.giverToken, s.receiver, items);
    const codes = [first.data!.transferOut.voucherCode, second.data!.transferOut.voucherCode];
    expect(codes[0]).not.toBe(codes[1]);
    for (const code of codes) {
      expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    }
    expect(await batchesOf(app, s.receiver)).toEqual([{ amount: 20, expiry: MAY }]);
  });
});

describe('transferOut: refusals change nothing', () => {
  async function refused(
    s: Scene,
    expected: string,
    receiverId: string,
    items: { amount: number; expiryDate: string }[],
    token = s.giverToken,
  ): Promise<void> {
    app.simulator.clearCalls();
    const before = await snapshot(app, [s.giver, s.receiver]);
    expectCode(await transferOut(app, token, receiverId, items), expected);
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(gatewayWrites(app)).toEqual([]);
  }

  it('BAD_USER_INPUT: empty receiver, the giver themself, 0 or 21 items, bad amounts, a past expiry', async () => {
    const s = await scene();
    const one = [{ amount: 1, expiryDate: MAY }];
    await refused(s, 'BAD_USER_INPUT', '', one);
    await refused(s, 'BAD_USER_INPUT', '   ', one);
    await refused(s, 'BAD_USER_INPUT', 'x'.repeat(201), one);
    await refused(s, 'BAD_USER_INPUT', s.giver, one);
    await refused(s, 'BAD_USER_INPUT', s.receiver, []);
    await refused(
      s,
      'BAD_USER_INPUT',
      s.receiver,
      Array.from({ length: 21 }, () => ({ amount: 0.01, expiryDate: MAY })),
    );
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 0, expiryDate: MAY }]);
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: -5, expiryDate: MAY }]);
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 1.005, expiryDate: MAY }]);
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 1e15, expiryDate: MAY }]);
    // Each amount is in range; their sum is not (the audit records it): refused before any batch is read.
    const half = 500_000_000_000;
    await refused(s, 'BAD_USER_INPUT', s.receiver, [
      { amount: half, expiryDate: MAY },
      { amount: half, expiryDate: APR },
    ]);
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 1, expiryDate: 'not a date' }]);
    // A past expiry, even with a VALID batch still holding it (monthly expiry not run yet).
    clock.set('2026-04-01T00:00:00Z');
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 1, expiryDate: MAR }]);
    clock.set(MAR);
    await refused(s, 'BAD_USER_INPUT', s.receiver, [{ amount: 1, expiryDate: MAR }]);
  });

  it('BAD_USER_INPUT when the voucher would be longer than transferIn takes (4096): a giver with many stars', async () => {
    const starred = (count: number) =>
      Array.from({ length: count }, (_, index) => `some-organisation.project-${index}`).join(',');
    const s = await scene();
    const starsOf = (count: number) =>
      em(app).execute('update auth_users set github_star = ? where id = ?', [starred(count), s.giver]);
    await starsOf(120);
    app.simulator.clearCalls();
    const before = await snapshot(app, [s.giver, s.receiver]);
    const response = await transferOut(app, s.giverToken, s.receiver, [{ amount: 1, expiryDate: MAY }]);
    expectCode(response, 'BAD_USER_INPUT');
    expect(response.errors![0]!.message).toMatch(
      /^This transfer's voucher would be \d{4,} characters long, and a voucher may have at most 4096: .*120 starred project\(s\) and one entry per item \(1\)\. Nothing was transferred\.$/,
    );
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(gatewayWrites(app)).toEqual([]);

    // Fewer stars fit: issued, and the receiver redeems it.
    await starsOf(80);
    const issued = await transferOut(app, s.giverToken, s.receiver, [{ amount: 1, expiryDate: MAY }]);
    expect(issued.errors).toBeUndefined();
    const code = issued.data!.transferOut.voucherCode;
    expect(code.length).toBeGreaterThan(3000);
    expect(code.length).toBeLessThanOrEqual(4096);
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
  });

  it('USER_NOT_FOUND for a receiver not in the directory', async () => {
    const s = await scene();
    await refused(s, 'USER_NOT_FOUND', 'nobody-here', [{ amount: 1, expiryDate: MAY }]);
  });

  it('QUOTA_NOT_FOUND without a VALID batch of that expiry', async () => {
    const s = await scene();
    await refused(s, 'QUOTA_NOT_FOUND', s.receiver, [{ amount: 1, expiryDate: '2026-06-30T15:59:59Z' }]);
    // One second off is another batch.
    await refused(s, 'QUOTA_NOT_FOUND', s.receiver, [{ amount: 1, expiryDate: '2026-05-31T15:59:58Z' }]);
  });

  it('INSUFFICIENT_QUOTA beyond what FIFO leaves in the batch (items of one expiry summed)', async () => {
    const s = await scene();
    // MAR holds 100 but all of it is used.
    await refused(s, 'INSUFFICIENT_QUOTA', s.receiver, [{ amount: 0.01, expiryDate: MAR }]);
    await refused(s, 'INSUFFICIENT_QUOTA', s.receiver, [{ amount: 50.01, expiryDate: APR }]);
    // Each alone fits; together they do not.
    await refused(s, 'INSUFFICIENT_QUOTA', s.receiver, [
      { amount: 30, expiryDate: APR },
      { amount: 1, expiryDate: MAY },
      { amount: 30, expiryDate: APR },
    ]);
    // The gateway's used is read, nothing written.
    expect(app.simulator.calls({ route: 'getUsed' })).toHaveLength(1);
  });

  it('checks in the spec order: the first failing check gives the code', async () => {
    const s = await scene();
    const noBatch = '2026-06-30T15:59:59Z';
    // Bad input beats an unknown receiver.
    await refused(s, 'BAD_USER_INPUT', 'nobody-here', [{ amount: 0, expiryDate: MAY }]);
    await refused(s, 'BAD_USER_INPUT', 'nobody-here', [
      { amount: 1, expiryDate: MAR },
      { amount: 1, expiryDate: '2020-01-01T00:00:00Z' },
    ]);
    // The checks below need no gateway: they hold their order even while it is down (the used read
    // may start early, but its failure only counts after them).
    app.simulator.setFault('getUsed', { kind: 'status', status: 503 });
    // An unknown receiver beats a missing batch.
    await refused(s, 'USER_NOT_FOUND', 'nobody-here', [{ amount: 1, expiryDate: noBatch }]);
    // A missing batch (second item) beats too little in the first item's batch.
    await refused(s, 'QUOTA_NOT_FOUND', s.receiver, [
      { amount: 999, expiryDate: APR },
      { amount: 1, expiryDate: noBatch },
    ]);
    // Then the gateway: too little is only known with the used read.
    await refused(s, 'GATEWAY_UNAVAILABLE', s.receiver, [{ amount: 999, expiryDate: APR }]);
    app.simulator.clearFaults();
    await refused(s, 'INSUFFICIENT_QUOTA', s.receiver, [{ amount: 999, expiryDate: APR }]);
  });

  it('UNAUTHENTICATED without a token', async () => {
    const s = await scene();
    const before = await snapshot(app, [s.giver, s.receiver]);
    const response = await app.gql('mutation { transferOut(input: {receiverId: "x", items: []}) { voucherCode } }');
    expectCode(response, 'UNAUTHENTICATED');
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
  });

  it('BAD_USER_INPUT for a malformed GraphQL input (wrong types)', async () => {
    const s = await scene();
    const before = await snapshot(app, [s.giver, s.receiver]);
    const response = await app.gql(
      'mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }',
      { input: { receiverId: s.receiver, items: [{ amount: 'ten', expiryDate: MAY }] } },
      { token: s.giverToken },
    );
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
  });
});

function errorCode(response: { errors?: { extensions?: Record<string, unknown> }[] }): unknown {
  return response.errors?.[0]?.extensions?.code;
}
