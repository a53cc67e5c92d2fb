import { createHmac } from 'node:crypto';
import { pino } from 'pino';
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
  issueVoucher,
  MAR,
  MAY,
  redemptionCount,
  START,
  snapshot,
  testClock,
  transferIn,
  uniqueId,
  VOUCHER,
  ZONE,
} from './voucher-support.js';

/** transferIn and voucher(code) (SPEC §5) through the API, on PostgreSQL and the gateway simulator. */

const clock = testClock();
const codec = new VoucherCodec({ signingKey: TEST_VOUCHER_KEY }, ZONE);
const logLines: { level: number; msg: string; receiverId?: string }[] = [];
let app: TestApp;

beforeAll(async () => {
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => logLines.push(JSON.parse(line) as (typeof logLines)[number]) },
  );
  app = await startTestApp({ label: 'vouchers-in', clock, logger });
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
  other: string;
  giverToken: string;
  receiverToken: string;
  otherToken: string;
}

/** A giver with 100@MAR, 100@APR, 100@MAY (nothing used) who stars two projects; a receiver; a bystander. */
async function scene(giverStars: string | null = 'zgsm-ai.zgsm,openai.gpt-4'): Promise<Scene> {
  const giver = uniqueId('giver');
  const receiver = uniqueId('receiver');
  const other = uniqueId('other');
  await addDirectoryUsers(app, [
    { id: giver, githubStar: giverStars },
    { id: receiver, employeeNumber: `EMP-${receiver}` },
    { id: other },
  ]);
  for (const expiry of [MAR, APR, MAY]) await grant(app, giver, 100, expiry);
  return {
    giver,
    receiver,
    other,
    giverToken: await app.token({ userId: giver, name: 'Giver Name', extraClaims: { phone: '138' } }),
    receiverToken: await app.token({ userId: receiver }),
    otherToken: await app.token({ userId: other }),
  };
}

describe('transferIn: first redemption', () => {
  it('SUCCESS: credits every item, audits, sets the gateway total and pushes the giver stars keyed by user id', async () => {
    const s = await scene();
    await grant(app, s.receiver, 5, APR);
    const code = await issueVoucher(app, s.giverToken, s.receiver, [
      { amount: 40, expiryDate: APR },
      { amount: 12.5, expiryDate: MAY },
    ]);
    app.simulator.clearCalls();

    const response = await transferIn(app, s.receiverToken, code);
    expect(response.errors).toBeUndefined();
    expect(response.data!.transferIn).toEqual({
      status: 'SUCCESS',
      message: expect.any(String),
      voucherCode: code,
      giverId: s.giver,
      giverName: 'Giver Name',
      giverPhone: '138',
      giverGithub: null,
      receiverId: s.receiver,
      amount: 52.5,
      items: [
        { amount: 40, expiryDate: APR, success: true, isExpired: false, failureReason: null },
        { amount: 12.5, expiryDate: MAY, success: true, isExpired: false, failureReason: null },
      ],
    });

    expect(await batchesOf(app, s.receiver)).toEqual([
      { amount: 45, expiry: APR },
      { amount: 12.5, expiry: MAY },
    ]);
    expect(app.simulator.getUser(s.receiver).total).toBe(5750);
    const audit = (await auditsOf(app, s.receiver)).at(-1)!;
    expect(audit).toEqual({
      operation: 'TRANSFER_IN',
      amount: 52.5,
      voucherCode: code,
      relatedUser: s.giver,
      expiry: APR,
      actor: s.receiver,
      details: {
        operation: 'TRANSFER_IN',
        summary: {
          totalAmount: 52.5,
          totalItems: 2,
          successfulItems: 2,
          failedItems: 0,
          expiredItems: 0,
          earliestExpiryDate: APR,
        },
        items: [
          { amount: 40, expiryDate: APR, status: 'SUCCESS', originalQuota: 5, newQuota: 45 },
          { amount: 12.5, expiryDate: MAY, status: 'SUCCESS', originalQuota: 0, newQuota: 12.5 },
        ],
      },
    });
    // Sync is off: the star push is keyed by the user id, not the employee number the user has.
    expect(gatewayWrites(app)).toEqual([
      ['setTotal', { user_id: s.receiver, quota: '57.5' }],
      ['setStarredProjects', { employee_number: s.receiver, starred_projects: 'zgsm-ai.zgsm,openai.gpt-4' }],
    ]);
    expect(await redemptionCount(app, code)).toBe(1);
  });

  it('PARTIAL_SUCCESS: an item that expired between transferOut and transferIn is lost', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [
      { amount: 10, expiryDate: MAR },
      { amount: 20, expiryDate: APR },
      { amount: 30, expiryDate: MAY },
    ]);
    clock.set(MAR); // expiry = now counts as passed
    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result.status).toBe('PARTIAL_SUCCESS');
    expect(result.message).toMatch(/2 of 3 item\(s\) credited; 1 had expired/);
    expect(result.amount).toBe(50);
    expect(result.items).toEqual([
      { amount: 10, expiryDate: MAR, success: false, isExpired: true, failureReason: 'EXPIRED' },
      { amount: 20, expiryDate: APR, success: true, isExpired: false, failureReason: null },
      { amount: 30, expiryDate: MAY, success: true, isExpired: false, failureReason: null },
    ]);
    expect(await batchesOf(app, s.receiver)).toEqual([
      { amount: 20, expiry: APR },
      { amount: 30, expiry: MAY },
    ]);
    const audit = (await auditsOf(app, s.receiver)).at(-1)!;
    expect(audit).toMatchObject({ operation: 'TRANSFER_IN', amount: 50, expiry: APR });
    expect(audit.details.summary).toMatchObject({ successfulItems: 2, expiredItems: 1, earliestExpiryDate: MAR });
    expect(audit.details.items[0]).toEqual({
      amount: 10,
      expiryDate: MAR,
      status: 'EXPIRED',
      failureReason: 'EXPIRED',
    });
  });

  it('FAILED: every item expired; the voucher is consumed, audit of 0, no gateway write, no star push', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [
      { amount: 20, expiryDate: APR },
      { amount: 10, expiryDate: MAR },
    ]);
    clock.set('2026-05-01T00:00:00Z');
    app.simulator.clearCalls();
    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result).toMatchObject({ status: 'FAILED', amount: 0 });
    expect(result.message).toMatch(/expired/);
    expect(result.items.every((item) => item.isExpired && !item.success)).toBe(true);
    expect(await batchesOf(app, s.receiver)).toEqual([]);
    expect(gatewayWrites(app)).toEqual([]);
    const [audit] = await auditsOf(app, s.receiver);
    expect(audit).toMatchObject({ operation: 'TRANSFER_IN', amount: 0, expiry: MAR, relatedUser: s.giver });
    expect(audit!.details.items.map((item) => item.status)).toEqual(['EXPIRED', 'EXPIRED']);
    expect(await redemptionCount(app, code)).toBe(1);

    const again = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(again).toMatchObject({ status: 'ALREADY_REDEEMED', amount: 0 });
    expect(again.message).toMatch(/outcome then: FAILED/);
  });

  it('redeems a voucher of the old system (built by hand in its format, signed with the key)', async () => {
    const s = await scene('');
    const json =
      `{"giver_id":"${s.giver}","giver_name":"Old","giver_phone":"","giver_github":"old-gh","giver_github_star":"",` +
      `"receiver_id":"${s.receiver}","quota_list":[{"amount":12.34,"expiry_date":"2026-04-30T23:59:59+08:00"}],"timestamp":1773540000}`;
    const hex = createHmac('sha256', TEST_VOUCHER_KEY).update(json).digest('hex');
    const code = Buffer.from(`${json}|${hex}`).toString('base64url');
    app.simulator.clearCalls();
    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result).toMatchObject({
      status: 'SUCCESS',
      amount: 12.34,
      giverName: 'Old',
      giverGithub: 'old-gh',
      giverPhone: null,
    });
    expect(await batchesOf(app, s.receiver)).toEqual([{ amount: 12.34, expiry: APR }]);
    // No stars in the voucher: no star push.
    expect(gatewayWrites(app).map(([route]) => route)).toEqual(['setTotal']);
  });

  it('a star push failure is logged and does not fail the redemption', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 1, expiryDate: MAY }]);
    app.simulator.setFault('setStarredProjects', { kind: 'status', status: 400 });
    logLines.length = 0;
    const result = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(result.status).toBe('SUCCESS');
    expect(await batchesOf(app, s.receiver)).toEqual([{ amount: 1, expiry: MAY }]);
    expect(logLines.some((line) => line.receiverId === s.receiver && /starred projects/.test(line.msg))).toBe(true);
  });
});

describe('transferIn: second redemption and refusals', () => {
  it('ALREADY_REDEEMED with the original outcome, and nothing changes', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [
      { amount: 10, expiryDate: MAR },
      { amount: 20, expiryDate: APR },
    ]);
    clock.set('2026-04-01T00:00:00Z');
    const first = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(first.status).toBe('PARTIAL_SUCCESS');
    clock.set('2026-04-02T00:00:00Z');
    app.simulator.clearCalls();
    const before = await snapshot(app, [s.giver, s.receiver]);

    const again = (await transferIn(app, s.receiverToken, code)).data!.transferIn;
    expect(again).toEqual({
      ...first,
      status: 'ALREADY_REDEEMED',
      message: expect.stringMatching(/already redeemed at 2026-04-01T00:00:00.000Z \(outcome then: PARTIAL_SUCCESS\)/),
    });
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(app.simulator.calls()).toEqual([]);
  });

  it('ALREADY_REDEEMED also when crediting it again would fail (the answer does not depend on the batches)', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: MAY }]);
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
    // The receiver's batches now refuse any change (a trigger stands in for a batch at numeric(14,2)'s limit).
    await em(app).execute(`create or replace function test_refuse_credit() returns trigger language plpgsql as $$
      begin if new.user_id = '${s.receiver}' then raise exception 'credit refused by the test'; end if; return new; end $$`);
    await em(app).execute(
      'create trigger test_refuse_credit before insert or update on quota for each row execute function test_refuse_credit()',
    );
    try {
      const again = await transferIn(app, s.receiverToken, code);
      expect(again.errors).toBeUndefined();
      expect(again.data!.transferIn).toMatchObject({ status: 'ALREADY_REDEEMED', amount: 10 });
    } finally {
      await em(app).execute('drop trigger if exists test_refuse_credit on quota');
      await em(app).execute('drop function if exists test_refuse_credit()');
    }
  });

  it('VOUCHER_NOT_FOR_USER for anyone but the receiver, and the voucher stays redeemable', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: MAY }]);
    app.simulator.clearCalls();
    const before = await snapshot(app, [s.giver, s.receiver, s.other]);
    expectCode(await transferIn(app, s.otherToken, code), 'VOUCHER_NOT_FOR_USER');
    expectCode(await transferIn(app, s.giverToken, code), 'VOUCHER_NOT_FOR_USER');
    expectCode(await transferIn(app, app.adminToken, code), 'VOUCHER_NOT_FOR_USER');
    expect(await snapshot(app, [s.giver, s.receiver, s.other])).toEqual(before);
    expect(app.simulator.calls()).toEqual([]);
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
  });

  it('VOUCHER_INVALID for malformed, forged, empty, over-long and future-dated codes; nothing changes', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: MAY }]);
    const payload = codec.decode(code, clock.now());
    const forger = new VoucherCodec({ signingKey: 'a-forged-key-that-is-at-least-32-bytes' }, ZONE);
    const flipped = code.slice(0, 20) + (code[20] === 'A' ? 'B' : 'A') + code.slice(21);
    // This very voucher, validly signed, with a giver_name that makes it 3073 bytes before base64url:
    // 4098 characters, the shortest signed code over the 4096 limit (4097 is no base64url length).
    const unpadded = Buffer.byteLength(codec.serialize({ ...payload, giverName: '' }), 'utf8') + '|'.length + 64;
    const overLong = codec.encode({ ...payload, giverName: 'x'.repeat(3073 - unpadded) });
    expect(overLong).toHaveLength(4098);
    const bad = [
      '',
      'hello world',
      `${code}=`,
      flipped,
      code.slice(0, -2),
      forger.encode(payload),
      codec.encode({ ...payload, items: [{ amount: 1_000_000, expiryDate: new Date(MAY) }] }).slice(0, -1),
      codec.encode({ ...payload, timestamp: Math.floor(clock.now().getTime() / 1000) + 120 }),
      'A'.repeat(4097),
      overLong,
      'A'.repeat(100_000),
    ];
    app.simulator.clearCalls();
    const before = await snapshot(app, [s.giver, s.receiver]);
    for (const candidate of bad) expectCode(await transferIn(app, s.receiverToken, candidate), 'VOUCHER_INVALID');
    expect(await snapshot(app, [s.giver, s.receiver])).toEqual(before);
    expect(app.simulator.calls()).toEqual([]);
    expect((await transferIn(app, s.receiverToken, code)).data!.transferIn.status).toBe('SUCCESS');
  });

  it('UNAUTHENTICATED without a token', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 10, expiryDate: MAY }]);
    const response = await app.gql('mutation($c: String!) { transferIn(voucherCode: $c) { status } }', { c: code });
    expectCode(response, 'UNAUTHENTICATED');
    expect(await redemptionCount(app, code)).toBe(0);
  });
});

describe('voucher(code)', () => {
  interface VoucherData {
    voucher: {
      valid: boolean;
      giverId: string | null;
      receiverId: string | null;
      items: { amount: number; expiryDate: string }[];
      issuedAt: string | null;
      redeemed: boolean;
      redeemedAt: string | null;
    };
  }

  it('shows the voucher to its giver, its receiver and admins, with the redemption once redeemed', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [
      { amount: 10, expiryDate: APR },
      { amount: 2.5, expiryDate: MAY },
    ]);
    const expected = {
      valid: true,
      giverId: s.giver,
      receiverId: s.receiver,
      items: [
        { amount: 10, expiryDate: APR },
        { amount: 2.5, expiryDate: MAY },
      ],
      issuedAt: START,
      redeemed: false,
      redeemedAt: null,
    };
    for (const token of [s.giverToken, s.receiverToken, app.adminToken]) {
      const response = await app.gql<VoucherData>(VOUCHER, { code }, { token });
      expect(response.data!.voucher).toEqual(expected);
    }
    clock.set('2026-03-20T00:00:00Z');
    await transferIn(app, s.receiverToken, code);
    const after = await app.gql<VoucherData>(VOUCHER, { code }, { token: s.giverToken });
    expect(after.data!.voucher).toEqual({ ...expected, redeemed: true, redeemedAt: '2026-03-20T00:00:00.000Z' });
  });

  it('FORBIDDEN for anyone else; valid: false for an undecodable code; UNAUTHENTICATED without a token', async () => {
    const s = await scene();
    const code = await issueVoucher(app, s.giverToken, s.receiver, [{ amount: 1, expiryDate: APR }]);
    expectCode(await app.gql(VOUCHER, { code }, { token: s.otherToken }), 'FORBIDDEN');
    for (const bad of ['', 'garbage!', code.slice(0, -3), 'A'.repeat(5000)]) {
      const response = await app.gql<VoucherData>(VOUCHER, { code: bad }, { token: s.otherToken });
      expect(response.data!.voucher).toEqual({
        valid: false,
        giverId: null,
        receiverId: null,
        items: [],
        issuedAt: null,
        redeemed: false,
        redeemedAt: null,
      });
    }
    expectCode(await app.gql(VOUCHER, { code }), 'UNAUTHENTICATED');
  });
});
