import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  addDirectoryUsers,
  auditsOf,
  batchesOf,
  checkInvariants,
  em,
  grant,
  testClock,
} from '../quota/quota-support.js';
import { waitForRun } from '../strategies/strategy-support.js';
import { errorCode, type GraphqlResponse, startTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';

/**
 * idempotencyKey on transferOut, deductQuota, runStrategy and triggerScan (issue 6): the same key with
 * the same arguments answers as the first call and does nothing again, also when calls race; with other
 * arguments → CONFLICT; a refused call keeps no key; keys are kept at least 24 hours.
 */

const clock = testClock('2026-11-15T04:00:00Z');
const DEC = '2026-12-31T15:59:59.000Z';
const JAN = '2027-01-31T15:59:59.000Z';
const HOUR = 3_600_000;

const TRANSFER_OUT = `mutation($input: TransferOutInput!, $key: String) {
  transferOut(input: $input, idempotencyKey: $key) { voucherCode receiverId totalAmount items { amount expiryDate } }
}`;
const DEDUCT = `mutation($input: DeductQuotaInput!, $key: String) {
  deductQuota(input: $input, idempotencyKey: $key) { id userId amount reason }
}`;
const RUN_STRATEGY = `mutation($id: ID!, $key: String) {
  runStrategy(id: $id, idempotencyKey: $key) { id type status }
}`;
const TRIGGER_SCAN = `mutation($type: ScanType!, $key: String) {
  triggerScan(type: $type, idempotencyKey: $key) { id type status }
}`;

type TransferOutResponse = GraphqlResponse<{ transferOut: { voucherCode: string; totalAmount: number } }>;
type DeductResponse = GraphqlResponse<{ deductQuota: { id: string; amount: number } }>;
type RunResponse = GraphqlResponse<{ runStrategy?: { id: string }; triggerScan?: { id: string } }>;

let app: TestApp;
let serial = 0;

beforeAll(async () => {
  app = await startTestApp({ label: 'idempotency', clock });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  clock.set('2026-11-15T04:00:00Z');
  await checkInvariants(app);
});

/** A giver with 100 expiring in December and a receiver, both new. */
async function pair(): Promise<{ giver: string; receiver: string; giverToken: string }> {
  serial += 1;
  const giver = `idem-giver-${serial}`;
  const receiver = `idem-receiver-${serial}`;
  await addDirectoryUsers(app, [{ id: giver }, { id: receiver }]);
  await grant(app, giver, 100, DEC);
  return { giver, receiver, giverToken: await app.token({ userId: giver }) };
}

function transferOut(
  token: string,
  receiverId: string,
  amount: number,
  key?: string,
  expiryDate = DEC,
): Promise<TransferOutResponse> {
  return app.gql(TRANSFER_OUT, { input: { receiverId, items: [{ amount, expiryDate }] }, key }, { token });
}

function deduct(
  userId: string,
  amount: number,
  key?: string,
  reason = 'correction',
  reference?: string,
): Promise<DeductResponse> {
  return app.gql(DEDUCT, { input: { userId, amount, reason, reference }, key }, { token: app.adminToken });
}

async function transferOutAudits(userId: string): Promise<number> {
  return (await auditsOf(app, userId)).filter((audit) => audit.operation === 'TRANSFER_OUT').length;
}

/** A transferOut refused for reusing a key with other arguments; the giver's batches and audits as they were. */
async function expectKeyConflict(giver: string, batches: unknown, call: Promise<TransferOutResponse>): Promise<void> {
  const response = await call;
  expect(errorCode(response)).toBe('CONFLICT');
  expect(response.errors![0]!.message).toContain('other arguments');
  expect(await batchesOf(app, giver)).toEqual(batches);
  expect(await transferOutAudits(giver)).toBe(1);
}

async function deductAudits(userId: string): Promise<number> {
  return (await auditsOf(app, userId)).filter((audit) => audit.operation === 'DEDUCT').length;
}

async function runsOfType(type: string): Promise<number> {
  const rows = await em(app).execute<{ n: string }[]>('select count(*) as n from job_run where type = ?', [type]);
  return Number(rows[0]!.n);
}

async function keyRows(operation: string): Promise<number> {
  const rows = await em(app).execute<{ n: string }[]>('select count(*) as n from idempotency_key where operation = ?', [
    operation,
  ]);
  return Number(rows[0]!.n);
}

async function createEnabledStrategy(name: string): Promise<string> {
  const response = await app.gql<{ createStrategy: { id: string } }>(
    `mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }`,
    { input: { name, title: name, type: 'SINGLE', amount: 1, condition: 'false()' } },
    { token: app.adminToken },
  );
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.createStrategy.id;
}

async function runsOfStrategy(strategyId: string): Promise<number> {
  const rows = await em(app).execute<{ n: string }[]>('select count(*) as n from job_run where strategy_id = ?', [
    strategyId,
  ]);
  return Number(rows[0]!.n);
}

describe('transferOut with an idempotencyKey', () => {
  it('answers a repeat with the first voucher even after the batch it took from expired', async () => {
    const s = await pair();
    clock.set('2026-12-31T15:59:00Z'); // a minute before the batch expires
    const first = await transferOut(s.giverToken, s.receiver, 10, 'k-late');
    expect(first.errors).toBeUndefined();
    clock.set('2026-12-31T16:00:00Z'); // the answer was lost; the retry comes after the expiry
    const repeat = await transferOut(s.giverToken, s.receiver, 10, 'k-late');
    expect(repeat.errors).toBeUndefined();
    expect(repeat.data).toEqual(first.data);
    expect(await transferOutAudits(s.giver)).toBe(1);
    // A new transfer from that batch is refused as before.
    const fresh = await transferOut(s.giverToken, s.receiver, 10, 'k-new');
    expect(errorCode(fresh)).toBe('BAD_USER_INPUT');
    expect(fresh.errors?.[0]?.message).toMatch(/items\[0\]\.expiryDate 2026-12-31T15:59:59\.000Z has already passed/);
  });

  it('answers a repeat with the first voucher and debits once, even when the balance no longer allows it', async () => {
    const s = await pair();
    const first = await transferOut(s.giverToken, s.receiver, 60, 'k-1');
    expect(first.errors).toBeUndefined();
    // 40 left: a fresh transfer of 60 would now be INSUFFICIENT_QUOTA, the repeat is not a fresh transfer.
    const repeat = await transferOut(s.giverToken, s.receiver, 60, 'k-1');
    expect(repeat.errors).toBeUndefined();
    expect(repeat.data).toEqual(first.data);
    expect(await transferOutAudits(s.giver)).toBe(1);
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([40]);
    expect(app.simulator.getUser(s.giver).total).toBe(4_000);
  });

  it('refuses the key with other arguments (CONFLICT) and changes nothing', async () => {
    const s = await pair();
    expect((await transferOut(s.giverToken, s.receiver, 10, 'k-2')).errors).toBeUndefined();
    const batches = await batchesOf(app, s.giver);
    await expectKeyConflict(s.giver, batches, transferOut(s.giverToken, s.receiver, 11, 'k-2'));
  });

  it('refuses the key with another receiver (CONFLICT) and changes nothing', async () => {
    const s = await pair();
    serial += 1;
    const otherReceiver = `idem-other-receiver-${serial}`;
    await addDirectoryUsers(app, [{ id: otherReceiver }]);
    expect((await transferOut(s.giverToken, s.receiver, 10, 'k-receiver')).errors).toBeUndefined();
    const batches = await batchesOf(app, s.giver);
    // Would transfer without the key: the receiver exists and the giver has the quota.
    await expectKeyConflict(s.giver, batches, transferOut(s.giverToken, otherReceiver, 10, 'k-receiver'));
  });

  it('refuses the key with another expiryDate (CONFLICT) and changes nothing', async () => {
    const s = await pair();
    await grant(app, s.giver, 100, JAN);
    expect((await transferOut(s.giverToken, s.receiver, 10, 'k-expiry')).errors).toBeUndefined();
    const batches = await batchesOf(app, s.giver);
    // Would transfer without the key: the giver has a batch expiring then.
    await expectKeyConflict(s.giver, batches, transferOut(s.giverToken, s.receiver, 10, 'k-expiry', JAN));
  });

  it('keeps keys apart per user: another giver with the same key transfers on its own', async () => {
    const a = await pair();
    const b = await pair();
    const first = await transferOut(a.giverToken, a.receiver, 10, 'shared-key');
    const second = await transferOut(b.giverToken, b.receiver, 10, 'shared-key');
    expect(second.errors).toBeUndefined();
    expect(second.data!.transferOut.voucherCode).not.toBe(first.data!.transferOut.voucherCode);
    expect(await transferOutAudits(b.giver)).toBe(1);
  });

  it('twelve racing calls with one key: one debit, one audit, one voucher for all', async () => {
    const s = await pair();
    const responses = await Promise.all(
      Array.from({ length: 12 }, () => transferOut(s.giverToken, s.receiver, 30, 'k-race')),
    );
    for (const response of responses) expect(response.errors).toBeUndefined();
    const codes = new Set(responses.map((response) => response.data!.transferOut.voucherCode));
    expect(codes.size).toBe(1);
    expect(await transferOutAudits(s.giver)).toBe(1);
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([70]);
  });

  it('a refused call keeps no key: the same key works once the giver has quota', async () => {
    const s = await pair();
    expect(errorCode(await transferOut(s.giverToken, s.receiver, 150, 'k-retry'))).toBe('INSUFFICIENT_QUOTA');
    await grant(app, s.giver, 100, DEC);
    const retried = await transferOut(s.giverToken, s.receiver, 150, 'k-retry');
    expect(retried.errors).toBeUndefined();
    expect(retried.data!.transferOut.totalAmount).toBe(150);
  });

  it('a gateway failure keeps no key: the retry with the key transfers once', async () => {
    const s = await pair();
    app.simulator.setFault('setTotal', { kind: 'status', status: 500 });
    expect(errorCode(await transferOut(s.giverToken, s.receiver, 10, 'k-gw'))).toBe('GATEWAY_UNAVAILABLE');
    app.simulator.clearFaults();
    const retried = await transferOut(s.giverToken, s.receiver, 10, 'k-gw');
    expect(retried.errors).toBeUndefined();
    expect(await transferOutAudits(s.giver)).toBe(1);
    expect((await transferOut(s.giverToken, s.receiver, 10, 'k-gw')).data).toEqual(retried.data);
    expect(await transferOutAudits(s.giver)).toBe(1);
  });

  it('remembers a key 24 hours, then forgets it (and the purge deletes it)', async () => {
    const s = await pair();
    const first = await transferOut(s.giverToken, s.receiver, 10, 'k-ttl');
    clock.advance(24 * HOUR - 1000);
    expect((await transferOut(s.giverToken, s.receiver, 10, 'k-ttl')).data).toEqual(first.data);
    expect(await transferOutAudits(s.giver)).toBe(1);
    expect(await app.app.services.idempotencyKeys.purgeExpired(em(app))).toBe(0);

    clock.advance(2000);
    const later = await transferOut(s.giverToken, s.receiver, 10, 'k-ttl');
    expect(later.errors).toBeUndefined();
    expect(later.data!.transferOut.voucherCode).not.toBe(first.data!.transferOut.voucherCode);
    expect(await transferOutAudits(s.giver)).toBe(2);

    clock.advance(25 * HOUR);
    expect(await app.app.services.idempotencyKeys.purgeExpired(em(app))).toBeGreaterThanOrEqual(1);
    const left = await em(app).execute('select 1 from idempotency_key where principal = ? and key = ?', [
      s.giver,
      'k-ttl',
    ]);
    expect(left).toEqual([]);
  });
});

describe('deductQuota with an idempotencyKey', () => {
  it('answers a repeat with the first audit; other arguments → CONFLICT; nothing deducted twice', async () => {
    const s = await pair();
    const first = await deduct(s.giver, 25, 'd-1');
    expect(first.errors).toBeUndefined();
    expect(await deduct(s.giver, 25, 'd-1')).toMatchObject({ data: first.data });
    expect(errorCode(await deduct(s.giver, 26, 'd-1'))).toBe('CONFLICT');
    expect(errorCode(await deduct(s.giver, 25, 'd-1', 'another reason'))).toBe('CONFLICT');
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([75]);
    expect((await auditsOf(app, s.giver)).filter((audit) => audit.operation === 'DEDUCT')).toHaveLength(1);
  });

  it('refuses the key with another reference (CONFLICT) and deducts nothing more', async () => {
    const s = await pair();
    expect((await deduct(s.giver, 25, 'd-ref', 'correction', 'ref-a')).errors).toBeUndefined();
    const batches = await batchesOf(app, s.giver);
    // Would deduct without the key: ref-b is a reference not used before.
    const other = await deduct(s.giver, 25, 'd-ref', 'correction', 'ref-b');
    expect(errorCode(other)).toBe('CONFLICT');
    expect(other.errors![0]!.message).toContain('other arguments');
    // Nor may the reference be dropped under the same key.
    expect(errorCode(await deduct(s.giver, 25, 'd-ref'))).toBe('CONFLICT');
    expect(await batchesOf(app, s.giver)).toEqual(batches);
    expect(await deductAudits(s.giver)).toBe(1);
  });

  it('racing calls with one key for one user deduct once; for two users one wins, the other is CONFLICT', async () => {
    const s = await pair();
    const same = await Promise.all(Array.from({ length: 8 }, () => deduct(s.giver, 5, 'd-race')));
    expect(new Set(same.map((response) => response.data?.deductQuota.id)).size).toBe(1);
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([95]);

    const t = await pair();
    const u = await pair();
    const split = await Promise.all([deduct(t.giver, 5, 'd-split'), deduct(u.giver, 5, 'd-split')]);
    expect(split.map((response) => errorCode(response) ?? 'OK').sort()).toEqual(['CONFLICT', 'OK']);
    const total = (await batchesOf(app, t.giver))[0]!.amount + (await batchesOf(app, u.giver))[0]!.amount;
    expect(total).toBe(195);
  });
  it('a key whose call replays a deduction with its reference (committed while it waited) answers its retries', async () => {
    const s = await pair();
    // Hold the user's ledger lock; queue a deduction with reference ref-w (no key), then one with the
    // same reference and a key. The first commits; the second finds ref-w inside the lock and replays it.
    let first!: Promise<DeductResponse>;
    let keyed!: Promise<DeductResponse>;
    await app.app.services.ledger.withUserLedger(em(app), s.giver, async () => {
      first = deduct(s.giver, 25, undefined, 'late fee', 'ref-w');
      await advisoryLockWaiters(em(app), 1);
      keyed = deduct(s.giver, 25, 'd-wait', 'late fee', 'ref-w');
      await advisoryLockWaiters(em(app), 2);
    });
    const [firstResponse, keyedResponse] = await Promise.all([first, keyed]);
    expect(firstResponse.errors).toBeUndefined();
    expect(keyedResponse).toMatchObject({ data: firstResponse.data });
    // The retry with the key answers the same (it said "still in progress" until the key expired).
    const retry = await deduct(s.giver, 25, 'd-wait', 'late fee', 'ref-w');
    expect(retry.errors).toBeUndefined();
    expect(retry).toMatchObject({ data: firstResponse.data });
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([75]);
    expect(await deductAudits(s.giver)).toBe(1);
  });
});

describe('runStrategy and triggerScan with an idempotencyKey', () => {
  it('runStrategy: a repeat answers with the first run and starts no other', async () => {
    const strategyId = await createEnabledStrategy(`idem-run-${Date.now()}`);
    const first = await app.gql<{ runStrategy: { id: string } }>(
      RUN_STRATEGY,
      { id: strategyId, key: 'r-1' },
      { token: app.adminToken },
    );
    expect(first.errors).toBeUndefined();
    const runId = first.data!.runStrategy.id;
    await waitForRun(app, runId);
    const racing = await Promise.all(
      Array.from({ length: 5 }, () =>
        app.gql<{ runStrategy: { id: string } }>(
          RUN_STRATEGY,
          { id: strategyId, key: 'r-1' },
          { token: app.adminToken },
        ),
      ),
    );
    for (const response of racing) expect(response.data!.runStrategy.id).toBe(runId);
    expect(await runsOfStrategy(strategyId)).toBe(1);

    const otherStrategy = await createEnabledStrategy(`idem-run-other-${Date.now()}`);
    const conflict: RunResponse = await app.gql(
      RUN_STRATEGY,
      { id: otherStrategy, key: 'r-1' },
      { token: app.adminToken },
    );
    expect(errorCode(conflict)).toBe('CONFLICT');
    expect(await runsOfStrategy(otherStrategy)).toBe(0);
  });

  it('runStrategy racing with a fresh key starts exactly one run', async () => {
    const strategyId = await createEnabledStrategy(`idem-race-${Date.now()}`);
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        app.gql<{ runStrategy: { id: string } }>(
          RUN_STRATEGY,
          { id: strategyId, key: 'r-race' },
          { token: app.adminToken },
        ),
      ),
    );
    expect(new Set(responses.map((response) => response.data?.runStrategy.id)).size).toBe(1);
    await waitForRun(app, responses[0]!.data!.runStrategy.id);
    expect(await runsOfStrategy(strategyId)).toBe(1);
  });

  it('triggerScan: the key answers with its run after it finished; without a key a new run starts', async () => {
    const first = await app.gql<{ triggerScan: { id: string } }>(
      TRIGGER_SCAN,
      { type: 'SYNC_QUOTAS', key: 's-1' },
      { token: app.adminToken },
    );
    expect(first.errors).toBeUndefined();
    const runId = first.data!.triggerScan.id;
    await waitForRun(app, runId);
    const repeat = await app.gql<{ triggerScan: { id: string; status: string } }>(
      TRIGGER_SCAN,
      { type: 'SYNC_QUOTAS', key: 's-1' },
      { token: app.adminToken },
    );
    expect(repeat.data!.triggerScan).toMatchObject({ id: runId, status: 'SUCCEEDED' });
    expect(
      errorCode(await app.gql(TRIGGER_SCAN, { type: 'EXPIRE_QUOTAS', key: 's-1' }, { token: app.adminToken })),
    ).toBe('CONFLICT');
    const fresh = await app.gql<{ triggerScan: { id: string } }>(
      TRIGGER_SCAN,
      { type: 'SYNC_QUOTAS' },
      { token: app.adminToken },
    );
    expect(fresh.data!.triggerScan.id).not.toBe(runId);
    await waitForRun(app, fresh.data!.triggerScan.id);
  });
});

describe('one key on two operations', () => {
  it('keeps keys apart per operation: the key of a triggerScan does not answer (or refuse) a deductQuota', async () => {
    const s = await pair();
    const runsBefore = await runsOfType('SYNC_QUOTAS');
    const scan = await app.gql<{ triggerScan: { id: string } }>(
      TRIGGER_SCAN,
      { type: 'SYNC_QUOTAS', key: 'shared' },
      { token: app.adminToken },
    );
    expect(scan.errors).toBeUndefined();
    await waitForRun(app, scan.data!.triggerScan.id);
    expect(await runsOfType('SYNC_QUOTAS')).toBe(runsBefore + 1);

    const deduction = await deduct(s.giver, 5, 'shared');
    expect(deduction.errors).toBeUndefined();
    expect(deduction.data!.deductQuota).toMatchObject({ userId: s.giver, amount: -5 });
    expect(await deductAudits(s.giver)).toBe(1);
    expect((await batchesOf(app, s.giver)).map((batch) => batch.amount)).toEqual([95]);
    expect(await runsOfType('SYNC_QUOTAS')).toBe(runsBefore + 1);
  });
});

describe('idempotencyKey values', () => {
  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['a space', 'a key'],
    ['a control character', 'key\u0007'],
    ['non-ASCII', 'clé'],
  ])('refuses %s with BAD_USER_INPUT and changes nothing', async (_label, key) => {
    const s = await pair();
    const before = await batchesOf(app, s.giver);
    const keysBefore = await keyRows('transferOut');
    const response = await transferOut(s.giverToken, s.receiver, 10, key);
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.errors![0]!.message).toContain('idempotencyKey');
    expect(await batchesOf(app, s.giver)).toEqual(before);
    expect(await keyRows('transferOut')).toBe(keysBefore);
    expect(errorCode(await deduct(s.giver, 1, key))).toBe('BAD_USER_INPUT');
    expect(errorCode(await app.gql(TRIGGER_SCAN, { type: 'SYNC_QUOTAS', key }, { token: app.adminToken }))).toBe(
      'BAD_USER_INPUT',
    );
  });

  it('accepts 255 visible ASCII characters', async () => {
    const s = await pair();
    const response = await transferOut(s.giverToken, s.receiver, 10, `${'k'.repeat(254)}~`);
    expect(response.errors).toBeUndefined();
  });
});

describe('the key store in the database', () => {
  it('one row per operation, caller and key: the primary key refuses a second', async () => {
    const row = ['deductQuota', 'pk-admin', 'pk-key', 'hash', new Date(), new Date(Date.now() + HOUR)];
    const insert =
      'insert into idempotency_key (operation, principal, key, request_hash, create_time, expire_time) values (?, ?, ?, ?, ?, ?)';
    await em(app).execute(insert, row);
    await expect(em(app).execute(insert, row)).rejects.toThrow(/duplicate key/);
    await em(app).execute('delete from idempotency_key where principal = ?', ['pk-admin']);
  });

  it('a deduction of an unknown user keeps no key', async () => {
    const before = await keyRows('deductQuota');
    expect(errorCode(await deduct('idem-nobody', 1, 'd-unknown'))).toBe('USER_NOT_FOUND');
    expect(await keyRows('deductQuota')).toBe(before);
  });
});
