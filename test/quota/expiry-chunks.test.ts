import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ExpiryRunResult } from '../../src/modules/quota/quota-expiry.service.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import {
  auditsOf,
  batchesOf,
  checkInvariants,
  EXPIRY_SCENE,
  em,
  ledgerSnapshot,
  setUpExpiryUser,
  testClock,
} from './quota-support.js';

/**
 * Monthly expiry settles a chunk of users in one transaction (set-based reads and writes, the users'
 * ledger locks held together). These tests check what that must not change (SPEC §5 "Monthly expiry"
 * 3: per user all or nothing; a failure for one user never touches another) and the paths the
 * set-based writes add: a batch settled to 0, a reset the gateway refuses in the middle of a chunk,
 * a database failure before the gateway heard of anything, and a user whose lock is held elsewhere.
 */

const { GRANT_TIME, RUN_TIME, EXPIRED, VALID } = EXPIRY_SCENE;

const clock = testClock(GRANT_TIME);
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-expiry-chunks', clock });
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

function postsFor(userId: string) {
  return app.simulator
    .calls({ method: 'POST' })
    .filter((call) => call.params.user_id === userId)
    .map((call) => `${call.route} ${call.params.value ?? call.params.quota}`);
}

async function expireChanges(): Promise<number> {
  const metric = await app.app.services.metrics.registry.getSingleMetric('ledger_changes_total')?.get();
  return metric?.values.find((value) => value.labels.operation === 'EXPIRE')?.value ?? 0;
}

describe('monthly expiry: a chunk of users in one transaction', () => {
  it('settles every user of the chunk exactly, a batch settled to 0 and consumption beyond every batch included', async () => {
    await setUpUser('c-example', [60], [100, 80], 150);
    // FIFO: 60 to the expired batch, the other 100 to the 100-batch, which is settled to 0 and removed.
    await setUpUser('c-zero', [60], [100, 30], 160);
    // More consumed than was ever granted: every batch is consumed, the whole used is reset.
    await setUpUser('c-over', [10], [20], 50);
    // Two expired batches, nothing consumed.
    await setUpUser('c-idle-due', [100, 150], [200], 0);
    // Nothing due: only last month's usage is recorded; the gateway hears nothing.
    await setUpUser('c-nothing-due', [], [40], 5);
    const metricBefore = await expireChanges();
    app.simulator.clearCalls();
    clock.set(RUN_TIME);

    const result = await runExpiry();
    expect(result).toMatchObject({ failed: 0, failures: [], settledUsers: 4 });

    expect(app.simulator.getUser('c-example')).toEqual({ total: 9_000, used: 0 });
    expect(await batchesOf(app, 'c-zero')).toEqual([
      { amount: 60, expiry: EXPIRED[0], status: 'EXPIRED' },
      { amount: 30, expiry: VALID[1], status: 'VALID' },
    ]);
    expect(app.simulator.getUser('c-zero')).toEqual({ total: 3_000, used: 0 });
    expect((await auditsOf(app, 'c-zero')).at(-1)).toMatchObject({ operation: 'EXPIRE', amount: -160 });
    expect((await auditsOf(app, 'c-zero')).at(-1)!.details).toMatchObject({
      items: [
        { amount: 60, expiryDate: EXPIRED[0], status: 'EXPIRED', originalQuota: 60, newQuota: 0 },
        { amount: 100, expiryDate: VALID[0], status: 'SUCCESS', originalQuota: 100, newQuota: 0 },
      ],
    });

    expect(await batchesOf(app, 'c-over')).toEqual([{ amount: 10, expiry: EXPIRED[0], status: 'EXPIRED' }]);
    expect(app.simulator.getUser('c-over')).toEqual({ total: 0, used: 0 });
    expect(postsFor('c-over')).toEqual(['addUsed -50', 'setTotal 0']);
    expect((await auditsOf(app, 'c-over')).at(-1)).toMatchObject({ operation: 'EXPIRE', amount: -30 });

    expect(app.simulator.getUser('c-idle-due')).toEqual({ total: 20_000, used: 0 });
    expect(postsFor('c-idle-due')).toEqual(['setTotal 200']);
    expect((await auditsOf(app, 'c-idle-due')).at(-1)).toMatchObject({ operation: 'EXPIRE', amount: -250 });

    expect(postsFor('c-nothing-due')).toEqual([]);
    expect(await batchesOf(app, 'c-nothing-due')).toEqual([{ amount: 40, expiry: VALID[0], status: 'VALID' }]);
    const usage = await em(app).execute<{ user_id: string; used_quota: string }[]>(
      `select user_id, used_quota from monthly_quota_usage where user_id like 'c-%' order by user_id`,
    );
    expect(usage.map((row) => [row.user_id, Number(row.used_quota)])).toEqual([
      ['c-example', 150],
      ['c-nothing-due', 5],
      ['c-over', 50],
      ['c-zero', 160],
    ]);

    // The metrics hear of each committed EXPIRE audit, as they do through the one-user ledger.
    expect((await expireChanges()) - metricBefore).toBe(4);
  });

  it('a reset refused for one user takes out only that user; the rest of the chunk commits', async () => {
    const users = ['r-1', 'r-2', 'r-3', 'r-4', 'r-5', 'r-6'];
    for (const userId of users) await setUpUser(userId, [40], [60], 50);
    const before = new Map<string, unknown>();
    for (const userId of users) before.set(userId, await ledgerSnapshot(app, userId));
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    // 400 is not retried: exactly one reset (whichever is sent first) is refused.
    app.simulator.setFault('addUsed', { kind: 'status', status: 400, times: 1 });

    const result = await runExpiry({ gatewayConcurrency: 3 });
    const refused = app.simulator.calls({ route: 'addUsed', outcome: 'fault' }).map((call) => call.params.user_id);
    expect(refused).toHaveLength(1);
    const [loser] = refused as [string];
    expect(result.failures).toEqual([{ userId: loser, reason: expect.stringMatching(/addUsed failed/) }]);
    expect(await ledgerSnapshot(app, loser)).toEqual(before.get(loser));
    expect(postsFor(loser)).toEqual(['addUsed -50']);
    for (const userId of users.filter((id) => id !== loser)) {
      expect(app.simulator.getUser(userId), userId).toEqual({ total: 5_000, used: 0 });
      expect(await batchesOf(app, userId), userId).toEqual([
        { amount: 40, expiry: EXPIRED[0], status: 'EXPIRED' },
        { amount: 50, expiry: VALID[0], status: 'VALID' },
      ]);
      expect((await auditsOf(app, userId)).at(-1), userId).toMatchObject({ operation: 'EXPIRE', amount: -50 });
    }

    const next = await runExpiry();
    expect(next).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser(loser)).toEqual({ total: 5_000, used: 0 });
  });

  it('a gateway used beyond what can be recorded takes out only that user, with the reason', async () => {
    const users = ['o-1', 'o-big', 'o-3'];
    for (const userId of users) await setUpUser(userId, [40], [60], 50);
    // 1,000,000,000,000.00 used: one more cent than numeric(14,2) holds; it failed the chunk's usage insert.
    app.simulator.setUser('o-big', { used: 100_000_000_000_000 });
    const before = await ledgerSnapshot(app, 'o-big');
    clock.set(RUN_TIME);

    const result = await runExpiry();
    expect(result.failures).toEqual([
      { userId: 'o-big', reason: expect.stringMatching(/used of 1000000000000(\.00)?, beyond what can be recorded/) },
    ]);
    expect(await ledgerSnapshot(app, 'o-big')).toEqual(before);
    for (const userId of ['o-1', 'o-3']) {
      expect(app.simulator.getUser(userId), userId).toEqual({ total: 5_000, used: 0 });
      expect((await auditsOf(app, userId)).at(-1), userId).toMatchObject({ operation: 'EXPIRE', amount: -50 });
    }
    // Set right on the gateway, the next run settles them.
    app.simulator.setUser('o-big', { used: 5_000 });
    expect(await runExpiry()).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser('o-big')).toEqual({ total: 5_000, used: 0 });
  });

  it('a reset that may have been applied is not repeated, and that user is rolled back alone', async () => {
    for (const userId of ['a-1', 'a-2', 'a-3']) await setUpUser(userId, [40], [60], 50);
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    app.simulator.setFault('addUsed', { kind: 'applied-then-drop', times: 1 });

    const result = await runExpiry();
    const [dropped] = app.simulator.calls({ route: 'addUsed', outcome: 'fault' }).map((call) => call.params.user_id);
    expect(result.failures).toEqual([{ userId: dropped, reason: expect.stringMatching(/addUsed failed/) }]);
    expect(app.simulator.calls({ route: 'addUsed' })).toHaveLength(3);
    expect(await batchesOf(app, dropped!)).toEqual([
      { amount: 40, expiry: EXPIRED[0], status: 'VALID' },
      { amount: 60, expiry: VALID[0], status: 'VALID' },
    ]);
    // The gateway applied the reset it never confirmed: used 0, total untouched.
    expect(app.simulator.getUser(dropped!)).toEqual({ total: 10_000, used: 0 });
    await runExpiry();
    expect(app.simulator.getUser(dropped!)).toEqual({ total: 6_000, used: 0 });
  });

  it('a total the gateway refuses leaves that user settled and reported; the others get theirs', async () => {
    for (const userId of ['t-1', 't-2', 't-3']) await setUpUser(userId, [40], [60], 50);
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    app.simulator.setFault('setTotal', { kind: 'status', status: 400, times: 1 });

    const result = await runExpiry();
    const [stale] = app.simulator.calls({ route: 'setTotal', outcome: 'fault' }).map((call) => call.params.user_id);
    expect(result.failures).toEqual([
      { userId: stale, reason: expect.stringMatching(/settled, but the gateway total was not set/) },
    ]);
    expect(result.settledUsers).toBe(3);
    for (const userId of ['t-1', 't-2', 't-3']) {
      expect((await auditsOf(app, userId)).at(-1), userId).toMatchObject({ operation: 'EXPIRE', amount: -50 });
      expect(app.simulator.getUser(userId), userId).toEqual({ total: userId === stale ? 10_000 : 5_000, used: 0 });
    }
    expect(await app.app.services.quotaSync.syncQuotas()).toMatchObject({ corrected: 1, failed: 0 });
  });
});

describe('monthly expiry: a user with nothing to reset whose total fails (SPEC §5: left untouched)', () => {
  it('a refused total takes out only that user, untouched; the next run settles them', async () => {
    for (const userId of ['z-1', 'z-2', 'z-3']) await setUpUser(userId, [40], [60], 0);
    const snapshots = new Map<string, unknown>();
    for (const userId of ['z-1', 'z-2', 'z-3']) snapshots.set(userId, await ledgerSnapshot(app, userId));
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    app.simulator.setFault('setTotal', { kind: 'status', status: 400, times: 1 });

    const result = await runExpiry();
    const [refused] = app.simulator.calls({ route: 'setTotal', outcome: 'fault' }).map((call) => call.params.user_id);
    expect(result.failures).toEqual([{ userId: refused, reason: expect.stringMatching(/setTotal failed/) }]);
    expect(result.settledUsers).toBe(2);
    for (const userId of ['z-1', 'z-2', 'z-3']) {
      if (userId === refused) {
        expect(await ledgerSnapshot(app, userId)).toEqual(snapshots.get(userId));
        expect(app.simulator.getUser(userId)).toEqual({ total: 10_000, used: 0 });
      } else {
        expect((await auditsOf(app, userId)).at(-1), userId).toMatchObject({ operation: 'EXPIRE', amount: -40 });
        expect(app.simulator.getUser(userId), userId).toEqual({ total: 6_000, used: 0 });
      }
    }
    expect(await runExpiry()).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser(refused!)).toEqual({ total: 6_000, used: 0 });
  });

  it('a total answered 5xx (it may have been applied) is set back, and the user stays untouched', async () => {
    await setUpUser('z-503', [40], [60], 0);
    const before = await ledgerSnapshot(app, 'z-503');
    app.simulator.clearCalls();
    clock.set(RUN_TIME);
    const attempts = app.app.services.config.gateway.retries + 1;
    app.simulator.setFault('setTotal', { kind: 'applied-then-status', status: 503, times: attempts });

    const result = await runExpiry();
    expect(result.failures).toEqual([{ userId: 'z-503', reason: expect.stringMatching(/setTotal failed/) }]);
    expect(postsFor('z-503')).toEqual([...Array<string>(attempts).fill('setTotal 60'), 'setTotal 100']);
    expect(app.simulator.getUser('z-503')).toEqual({ total: 10_000, used: 0 });
    expect(await ledgerSnapshot(app, 'z-503')).toEqual(before);
    expect(await runExpiry()).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser('z-503')).toEqual({ total: 6_000, used: 0 });
  });
});

describe('monthly expiry: a database failure in a chunk', () => {
  it('settles the users one by one when the chunk fails before the gateway heard of it; only the bad user fails', async () => {
    for (const userId of ['d-1', 'd-poisoned', 'd-2']) await setUpUser(userId, [40], [60], 50);
    const poisonedBefore = await ledgerSnapshot(app, 'd-poisoned');
    // A database that refuses one user's expiry (a trigger stands in for a constraint or a bug).
    await em(app).execute(`
      create or replace function test_poison_expiry() returns trigger language plpgsql as $$
      begin
        if new.user_id = 'd-poisoned' and new.status = 'EXPIRED' then raise exception 'poisoned batch'; end if;
        return new;
      end $$`);
    await em(app).execute(
      'create trigger test_poison_expiry before update on quota for each row execute function test_poison_expiry()',
    );
    try {
      app.simulator.clearCalls();
      clock.set(RUN_TIME);
      const result = await runExpiry();
      expect(result.failures).toEqual([{ userId: 'd-poisoned', reason: expect.stringMatching(/poisoned batch/) }]);
      expect(result.settledUsers).toBe(2);
      expect(postsFor('d-poisoned')).toEqual([]);
      expect(await ledgerSnapshot(app, 'd-poisoned')).toEqual(poisonedBefore);
      for (const userId of ['d-1', 'd-2']) {
        expect(app.simulator.getUser(userId), userId).toEqual({ total: 5_000, used: 0 });
        expect(postsFor(userId), userId).toEqual(['addUsed -50', 'setTotal 50']);
      }
    } finally {
      await em(app).execute('drop trigger if exists test_poison_expiry on quota');
      await em(app).execute('drop function if exists test_poison_expiry()');
    }
    expect(await runExpiry()).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser('d-poisoned')).toEqual({ total: 5_000, used: 0 });
  });

  it('a commit that fails after a total was answered 5xx sets that total back (a 5xx may have been applied)', async () => {
    // Something consumed, so the user is committed whatever their total does (their used was reset); a
    // user with nothing to reset is taken out at once instead (the tests above).
    await setUpUser('k-503', [40], [60], 30);
    const before = await ledgerSnapshot(app, 'k-503');
    // A deferred constraint trigger: the audit is refused at COMMIT, after the gateway was told.
    await em(app).execute(`
      create or replace function test_refuse_commit() returns trigger language plpgsql as $$
      begin
        if new.user_id = 'k-503' then raise exception 'commit refused by the test'; end if;
        return new;
      end $$`);
    await em(app).execute(
      `create constraint trigger test_refuse_commit after insert on quota_audit
       deferrable initially deferred for each row execute function test_refuse_commit()`,
    );
    try {
      app.simulator.clearCalls();
      clock.set(RUN_TIME);
      // Every attempt of the settlement's setTotal is applied and then answered 503 (as an Envoy in
      // front of the gateway does when its upstream resets); the restoring setTotal after it gets through.
      const attempts = app.app.services.config.gateway.retries + 1;
      app.simulator.setFault('setTotal', { kind: 'applied-then-status', status: 503, times: attempts });
      const result = await runExpiry();
      expect(result.failures).toEqual([
        { userId: 'k-503', reason: expect.stringMatching(/commit refused by the test/) },
      ]);
      expect(postsFor('k-503')).toEqual([
        'addUsed -30',
        ...Array<string>(attempts).fill('setTotal 60'),
        'setTotal 100',
      ]);
      // The reset cannot be taken back (logged for a human); the total is the committed Σ again.
      expect(await ledgerSnapshot(app, 'k-503')).toEqual({
        ...(before as object),
        gateway: { total: 10_000, used: 0 },
      });
    } finally {
      await em(app).execute('drop trigger if exists test_refuse_commit on quota_audit');
      await em(app).execute('drop function if exists test_refuse_commit()');
    }
    expect(await runExpiry()).toMatchObject({ failed: 0, settledUsers: 1 });
    expect(app.simulator.getUser('k-503')).toEqual({ total: 6_000, used: 0 });
  });
});

describe('monthly expiry: the ledger lock', () => {
  it('waits for a change that holds a user’s ledger lock, then settles what that change left', async () => {
    await setUpUser('l-busy', [30], [70], 20);
    clock.set(RUN_TIME);
    let expiry: Promise<ExpiryRunResult> | undefined;
    await app.app.services.ledger.withUserLedger(em(app), 'l-busy', async (ledger) => {
      expiry = runExpiry();
      await advisoryLockWaiters(em(app), 1);
      // Inside the lock, while the expiry waits for it: a grant the expiry must see.
      await ledger.credit(new Date(VALID[2]!), 500);
      await ledger.audit({
        operation: 'RECHARGE',
        amount: 500,
        expiryDate: new Date(VALID[2]!),
        items: [{ amount: 500, expiryDate: new Date(VALID[2]!), status: 'SUCCESS' }],
        actor: 'test',
      });
      await ledger.pushTotal();
    });
    expect(await expiry!).toMatchObject({ failed: 0 });
    // 20 used of the expired 30 (10 lost), 70 + 5 left: had the expiry not waited, it would push 70.
    expect(app.simulator.getUser('l-busy')).toEqual({ total: 7_500, used: 0 });
    expect((await auditsOf(app, 'l-busy')).at(-1)).toMatchObject({ operation: 'EXPIRE', amount: -30 });
  });
});
