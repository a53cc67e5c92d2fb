import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { seedDemoQuota } from '../../src/modules/quota/demo-quota.js';
import { demoUsers } from '../../src/modules/users/demo-directory.js';
import { MAX_CENTS } from '../../src/money.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import { failure } from '../support/failure.js';
import { auditsOf, batchesOf, checkInvariants, em, grant, ledgerSnapshot, testClock } from './quota-support.js';

/** The ledger core and grants (SPEC §4 "A grant is one transaction", §5, §8) on PostgreSQL + the simulator. */

const clock = testClock('2026-11-15T04:00:00Z');
const DEC = '2026-12-31T15:59:59.000Z'; // 23:59:59 on 31 Dec in Asia/Shanghai
const JAN = '2027-01-31T15:59:59.000Z';

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-ledger', clock });
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  await checkInvariants(app);
});

function codeOf(error: unknown): string | undefined {
  return error instanceof DomainError ? error.code : undefined;
}

describe('grants', () => {
  it('credits a batch, writes a RECHARGE audit and sets the gateway total absolutely', async () => {
    app.simulator.clearCalls();
    const result = await grant(app, 'g-1', 100, DEC);
    expect(result.total).toBe(10_000);
    expect(result.batch).toMatchObject({ userId: 'g-1', amount: 10_000, status: 'VALID' });
    expect(result.batch.expiryDate.toISOString()).toBe(DEC);
    expect(await batchesOf(app, 'g-1')).toEqual([{ amount: 100, expiry: DEC, status: 'VALID' }]);
    const [audit] = await auditsOf(app, 'g-1');
    expect(audit).toMatchObject({ operation: 'RECHARGE', amount: 100 });
    expect(audit!.details).toEqual({
      operation: 'RECHARGE',
      summary: {
        totalAmount: 100,
        totalItems: 1,
        successfulItems: 1,
        failedItems: 0,
        expiredItems: 0,
        earliestExpiryDate: DEC,
      },
      items: [{ amount: 100, expiryDate: DEC, status: 'SUCCESS', originalQuota: 0, newQuota: 100 }],
    });
    // Only absolute writes: never a delta on the total.
    const writes = app.simulator.calls({ method: 'POST' });
    expect(writes.map((call) => [call.route, call.params])).toEqual([['setTotal', { user_id: 'g-1', quota: '100' }]]);
  });

  it('adds a grant with the same expiry to the same batch, and keeps other expiries apart', async () => {
    await grant(app, 'g-2', 10.5, DEC);
    await grant(app, 'g-2', 0.25, DEC);
    await grant(app, 'g-2', 7, JAN);
    expect(await batchesOf(app, 'g-2')).toEqual([
      { amount: 10.75, expiry: DEC, status: 'VALID' },
      { amount: 7, expiry: JAN, status: 'VALID' },
    ]);
    expect(app.simulator.getUser('g-2').total).toBe(1775);
    const audits = await auditsOf(app, 'g-2');
    expect(audits.map((audit) => audit.amount)).toEqual([10.5, 0.25, 7]);
    expect((audits[1]!.details as { items: unknown[] }).items).toEqual([
      { amount: 0.25, expiryDate: DEC, status: 'SUCCESS', originalQuota: 10.5, newQuota: 10.75 },
    ]);
  });

  it('keys batches by the whole second: a grant at .500 of the same second joins the batch', async () => {
    await grant(app, 'g-3', 1, DEC);
    await grant(app, 'g-3', 2, new Date(new Date(DEC).getTime() + 500));
    expect(await batchesOf(app, 'g-3')).toEqual([{ amount: 3, expiry: DEC, status: 'VALID' }]);
  });

  it('20 parallel grants to one new user with different expiries: gateway total = Σ', async () => {
    const base = new Date(DEC).getTime();
    const amounts = Array.from({ length: 20 }, (_, index) => index + 1 + 0.01 * index);
    await Promise.all(
      amounts.map((amount, index) => grant(app, 'g-parallel', amount, new Date(base + index * 86_400_000))),
    );
    const expected = amounts.reduce((sum, amount) => sum + Math.round(amount * 100), 0);
    expect(app.simulator.getUser('g-parallel').total).toBe(expected);
    expect(await batchesOf(app, 'g-parallel')).toHaveLength(20);
  });

  it('20 parallel grants with the same expiry make one batch holding the sum', async () => {
    await Promise.all(Array.from({ length: 20 }, () => grant(app, 'g-same', 5, DEC)));
    expect(await batchesOf(app, 'g-same')).toEqual([{ amount: 100, expiry: DEC, status: 'VALID' }]);
    expect(app.simulator.getUser('g-same').total).toBe(10_000);
  });

  it('a gateway failure leaves nothing and answers GATEWAY_UNAVAILABLE', async () => {
    await grant(app, 'g-fail', 10, DEC);
    const before = await ledgerSnapshot(app, 'g-fail');
    app.simulator.setFault('setTotal', { kind: 'status', status: 503 });
    const error = await failure(grant(app, 'g-fail', 5, JAN));
    expect(codeOf(error)).toBe('GATEWAY_UNAVAILABLE');
    app.simulator.clearFaults();
    expect(await ledgerSnapshot(app, 'g-fail')).toEqual(before);
  });

  it('runs the caller’s inTransaction step inside the grant; its failure rolls the grant back', async () => {
    const service = app.app.services.quota;
    let seenInside = -1;
    await service.grantQuota(
      em(app),
      { userId: 'g-tx', amount: 1000, expiryDate: new Date(DEC), strategyId: '7', strategyName: 'welcome' },
      {
        inTransaction: async (transaction) => {
          const [row] = await transaction.execute<{ n: string }>(
            `select count(*) as n from quota_audit where user_id = 'g-tx'`,
          );
          seenInside = Number(row!.n);
        },
      },
    );
    expect(seenInside).toBe(1);
    const [audit] = await auditsOf(app, 'g-tx');
    expect(audit).toMatchObject({ operation: 'RECHARGE', amount: 10 });

    app.simulator.clearCalls();
    const before = await ledgerSnapshot(app, 'g-tx');
    const error = await failure(
      service.grantQuota(
        em(app),
        { userId: 'g-tx', amount: 500, expiryDate: new Date(DEC) },
        {
          inTransaction: async () => {
            throw new Error('execution could not be marked');
          },
        },
      ),
    );
    expect((error as Error).message).toBe('execution could not be marked');
    expect(await ledgerSnapshot(app, 'g-tx')).toEqual(before);
    expect(app.simulator.calls({ method: 'POST' })).toEqual([]);
  });

  it('refuses bad grants with BAD_USER_INPUT and changes nothing', async () => {
    const service = app.app.services.quota;
    const bad = [
      { userId: 'g-bad', amount: 0, expiryDate: new Date(DEC) },
      { userId: 'g-bad', amount: -100, expiryDate: new Date(DEC) },
      { userId: 'g-bad', amount: 1.5, expiryDate: new Date(DEC) },
      { userId: 'g-bad', amount: MAX_CENTS + 1, expiryDate: new Date(DEC) },
      { userId: '', amount: 100, expiryDate: new Date(DEC) },
      { userId: 'g-bad', amount: 100, expiryDate: new Date('2026-11-01T00:00:00Z') },
      { userId: 'g-bad', amount: 100, expiryDate: new Date('nope') },
    ];
    for (const input of bad) {
      expect(codeOf(await failure(service.grantQuota(em(app), input)))).toBe('BAD_USER_INPUT');
    }
    expect(await ledgerSnapshot(app, 'g-bad')).toEqual({ batches: [], audits: [], gateway: { total: 0, used: 0 } });
  });
});

describe('the ledger core', () => {
  it('debits never below 0 and removes a batch at 0', async () => {
    const { ledger } = app.app.services;
    const { batch } = await grant(app, 'l-1', 10, DEC);
    const insufficient = await failure(
      ledger.withUserLedger(em(app), 'l-1', async (user) => {
        await user.debit(batch.id, 1001);
      }),
    );
    expect(codeOf(insufficient)).toBe('INSUFFICIENT_QUOTA');
    const left = await ledger.withUserLedger(em(app), 'l-1', async (user) => {
      const remaining = await user.debit(batch.id, 400);
      await user.audit({ operation: 'DEDUCT', amount: -400, expiryDate: batch.expiryDate, items: [] });
      await user.pushTotal();
      return remaining;
    });
    expect(left).toBe(600);
    await ledger.withUserLedger(em(app), 'l-1', async (user) => {
      expect(await user.debit(batch.id, 600)).toBe(0);
      await user.audit({ operation: 'DEDUCT', amount: -600, expiryDate: batch.expiryDate, items: [] });
      await user.pushTotal();
    });
    expect(await batchesOf(app, 'l-1')).toEqual([]);
    const missing = await failure(ledger.withUserLedger(em(app), 'l-1', (user) => user.debit(batch.id, 1)));
    expect(codeOf(missing)).toBe('QUOTA_NOT_FOUND');
  });

  it('the database refuses a negative batch even if code tried', async () => {
    await grant(app, 'l-2', 1, DEC);
    const error = await failure(em(app).execute(`update quota set amount = -1 where user_id = 'l-2'`));
    expect(String((error as Error).message)).toMatch(/quota_amount_non_negative/);
  });

  it('refuses audits whose sign contradicts the operation', async () => {
    const error = await failure(
      app.app.services.ledger.withUserLedger(em(app), 'l-3', (user) =>
        user.audit({ operation: 'RECHARGE', amount: -1, expiryDate: new Date(DEC), items: [] }),
      ),
    );
    expect((error as Error).message).toMatch(/RECHARGE audit cannot have amount -1/);
  });

  it('lists VALID batches by expiry and validTotal sums them', async () => {
    await grant(app, 'l-4', 3, JAN);
    await grant(app, 'l-4', 2, DEC);
    const seen = await app.app.services.ledger.withUserLedger(em(app), 'l-4', async (user) => ({
      batches: (await user.validBatches()).map((batch) => [batch.amount, batch.expiryDate.toISOString()]),
      total: await user.validTotal(),
    }));
    expect(seen).toEqual({
      batches: [
        [200, DEC],
        [300, JAN],
      ],
      total: 500,
    });
  });

  it('serialises one user’s changes: two transactions never interleave', async () => {
    const { ledger } = app.app.services;
    const order: string[] = [];
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    let firstEntered!: () => void;
    const entered = new Promise<void>((resolve) => {
      firstEntered = resolve;
    });
    const first = ledger.withUserLedger(em(app), 'l-5', async () => {
      order.push('first in');
      firstEntered();
      await firstHolds;
      order.push('first out');
    });
    try {
      await entered;
      const second = ledger.withUserLedger(em(app), 'l-5', async () => {
        order.push('second in');
      });
      const other = ledger.withUserLedger(em(app), 'l-5-other', async () => {
        order.push('other user');
      });
      await other;
      // The first holds on until the second is queued on the lock: released after a fixed sleep, a
      // second change that had not asked for the lock yet ran after it anyway, lock or not.
      await advisoryLockWaiters(em(app), 1);
      releaseFirst();
      await Promise.all([first, second]);
      expect(order).toEqual(['first in', 'other user', 'first out', 'second in']);
    } finally {
      releaseFirst();
      await first.catch(() => undefined);
    }
  });

  it('restores the gateway total when the work fails after the total was pushed', async () => {
    await grant(app, 'l-6', 10, DEC);
    const error = await failure(
      app.app.services.ledger.withUserLedger(em(app), 'l-6', async (user) => {
        await user.credit(new Date(JAN), 500);
        await user.audit({ operation: 'RECHARGE', amount: 500, expiryDate: new Date(JAN), items: [] });
        await user.pushTotal();
        throw new Error('late failure');
      }),
    );
    expect((error as Error).message).toBe('late failure');
    expect(app.simulator.getUser('l-6').total).toBe(1000);
    expect(await batchesOf(app, 'l-6')).toEqual([{ amount: 10, expiry: DEC, status: 'VALID' }]);
  });
});

describe('storage (SPEC §12)', () => {
  it('keeps amounts as numeric(14,2) units and times as timestamptz', async () => {
    const rows = await em(app).execute<
      { column: string; data_type: string; numeric_precision: number | null; numeric_scale: number | null }[]
    >(
      `select table_name || '.' || column_name as column, data_type, numeric_precision, numeric_scale
         from information_schema.columns
        where table_name in ('quota', 'quota_audit', 'monthly_quota_usage')
          and (column_name in ('amount', 'used_quota') or column_name like '%_time' or column_name = 'expiry_date')
        order by 1`,
    );
    const types = Object.fromEntries(
      rows.map((row) => [
        row.column,
        row.data_type === 'numeric' ? `numeric(${row.numeric_precision},${row.numeric_scale})` : row.data_type,
      ]),
    );
    const amount = 'numeric(14,2)';
    const time = 'timestamp with time zone';
    expect(types).toEqual({
      'monthly_quota_usage.create_time': time,
      'monthly_quota_usage.record_time': time,
      'monthly_quota_usage.used_quota': amount,
      'quota.amount': amount,
      'quota.create_time': time,
      'quota.expiry_date': time,
      'quota.update_time': time,
      'quota_audit.amount': amount,
      'quota_audit.create_time': time,
      'quota_audit.expiry_date': time,
    });
  });

  it('keeps the old tables and column names, with the additions', async () => {
    const rows = await em(app).execute<{ table_name: string; column_name: string }[]>(
      `select table_name, column_name from information_schema.columns
        where table_name in ('quota', 'quota_audit', 'voucher_redemption', 'monthly_quota_usage')
        order by table_name, ordinal_position`,
    );
    const columns: Record<string, string[]> = {};
    for (const row of rows) {
      columns[row.table_name] = [...(columns[row.table_name] ?? []), row.column_name];
    }
    expect(columns).toEqual({
      quota: ['id', 'user_id', 'amount', 'expiry_date', 'status', 'create_time', 'update_time'],
      quota_audit: [
        'id',
        'user_id',
        'amount',
        'operation',
        'voucher_code',
        'related_user',
        'strategy_id',
        'strategy_name',
        'expiry_date',
        'details',
        'create_time',
        'reason',
        'reference',
        'actor',
      ],
      voucher_redemption: ['id', 'voucher_code', 'receiver_id', 'create_time', 'result'],
      monthly_quota_usage: ['id', 'user_id', 'year_month', 'used_quota', 'record_time', 'create_time'],
    });
  });

  it('redeems a voucher code of 4096 characters once: the second insert is refused by the database', async () => {
    const code = `${'v'.repeat(4095)}x`;
    const insert = () =>
      em(app).execute(`insert into voucher_redemption (voucher_code, receiver_id) values (?, 'r-1')`, [code]);
    await insert();
    expect(String(((await failure(insert())) as Error).message)).toMatch(/voucher_redemption_code_md5_key/);
    await em(app).execute('delete from voucher_redemption where voucher_code = ?', [code]);
  });

  it('refuses an unknown status or operation, and a second usage record for one month', async () => {
    const status = await failure(
      em(app).execute(`insert into quota (user_id, amount, expiry_date, status) values ('s-1', 1, now(), 'USED')`),
    );
    expect(String((status as Error).message)).toMatch(/quota_status_valid/);
    const operation = await failure(
      em(app).execute(
        `insert into quota_audit (user_id, amount, operation, expiry_date) values ('s-1', 0, 'REFUND', now())`,
      ),
    );
    expect(String((operation as Error).message)).toMatch(/quota_audit_operation_valid/);
    const usage = `insert into monthly_quota_usage (user_id, year_month, used_quota, record_time) values ('s-1', '2026-10', 1, now())`;
    await em(app).execute(usage);
    expect(String(((await failure(em(app).execute(usage))) as Error).message)).toMatch(
      /monthly_quota_usage_user_month_key/,
    );
    await em(app).execute(`delete from monthly_quota_usage where user_id = 's-1'`);
  });
});

describe('demo data', () => {
  it('seeds grants for a few demo users through the ledger, once', async () => {
    const first = await seedDemoQuota(app.app.services.orm, app.config, silentLogger(), clock);
    expect(first).toEqual({ users: 5, grants: 8, gatewayConfigured: true });
    expect(app.simulator.getUser(demoUsers[0]!.id).total).toBe(35_000);
    expect(await batchesOf(app, demoUsers[0]!.id)).toEqual([
      { amount: 100, expiry: '2026-11-30T15:59:59.000Z', status: 'VALID' },
      { amount: 250, expiry: '2026-12-31T15:59:59.000Z', status: 'VALID' },
    ]);
    const again = await seedDemoQuota(app.app.services.orm, app.config, silentLogger(), clock);
    expect(again).toEqual({ users: 0, grants: 0, gatewayConfigured: true });
  });
});
