import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import { grantExpiry } from '../../src/modules/strategies/strategy-rules.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { addUsers, checkInvariants, createStrategy, executionsOf, runAndWait } from './strategy-support.js';

/** SPEC §4 "Expiry of a grant", in the configured zone (never the host's), and the batch number of a run. */

describe('grantExpiry', () => {
  const shanghai = 'Asia/Shanghai';
  const newYork = 'America/New_York';
  const cases: [string, string, string, number | null, 'end-of-next-month' | 'end-of-month', string][] = [
    // label, zone, now, validityDays, rule, expected instant
    ['end of next month', shanghai, '2026-11-15T04:00:00Z', null, 'end-of-next-month', '2026-12-31T15:59:59Z'],
    ['end of this month', shanghai, '2026-11-15T04:00:00Z', null, 'end-of-month', '2026-11-30T15:59:59Z'],
    // 2026-01-31 16:30 UTC is already 1 February in Shanghai: next month is March, not February.
    [
      'across a month end, next month',
      shanghai,
      '2026-01-31T16:30:00Z',
      null,
      'end-of-next-month',
      '2026-03-31T15:59:59Z',
    ],
    ['across a month end, this month', shanghai, '2026-01-31T16:30:00Z', null, 'end-of-month', '2026-02-28T15:59:59Z'],
    ['into a leap February', shanghai, '2028-01-15T04:00:00Z', null, 'end-of-next-month', '2028-02-29T15:59:59Z'],
    ['in a leap February', shanghai, '2028-02-10T04:00:00Z', null, 'end-of-month', '2028-02-29T15:59:59Z'],
    ['December into January', shanghai, '2026-12-20T04:00:00Z', null, 'end-of-next-month', '2027-01-31T15:59:59Z'],
    ['validityDays 1 on 29 February', shanghai, '2028-02-28T20:00:00Z', 1, 'end-of-next-month', '2028-03-01T15:59:59Z'],
    ['validityDays 30 across months', shanghai, '2026-01-31T16:30:00Z', 30, 'end-of-month', '2026-03-03T15:59:59Z'],
    // New York: still 31 March there while it is 1 April in UTC.
    ['New York, this month at night', newYork, '2026-04-01T03:30:00Z', null, 'end-of-month', '2026-04-01T03:59:59Z'],
    ['New York, next month', newYork, '2026-04-01T03:30:00Z', null, 'end-of-next-month', '2026-05-01T03:59:59Z'],
    // 5 March is EST (-05:00); 12 March is EDT (-04:00) after the switch on 8 March.
    ['New York, validityDays across DST', newYork, '2026-03-05T15:00:00Z', 7, 'end-of-month', '2026-03-13T03:59:59Z'],
    [
      'New York, February of a leap year',
      newYork,
      '2028-01-31T23:00:00Z',
      null,
      'end-of-next-month',
      '2028-03-01T04:59:59Z',
    ],
  ];
  test.each(cases)('%s', (_label, zone, now, validityDays, rule, expected) => {
    expect(grantExpiry(new Date(now), zone, validityDays, rule).toISOString()).toBe(new Date(expected).toISOString());
  });
});

describe('grants use the configured zone and rule', () => {
  let shanghai: TestApp;
  let newYork: TestApp;
  const shanghaiClock = new SettableClock('Asia/Shanghai', '2026-01-31T16:30:00Z');
  const newYorkClock = new SettableClock('America/New_York', '2026-04-01T03:30:00Z');

  beforeAll(async () => {
    [shanghai, newYork] = await Promise.all([
      startTestApp({ label: 'strategy expiry shanghai', clock: shanghaiClock }),
      startTestApp({
        label: 'strategy expiry new york',
        clock: newYorkClock,
        env: { TZ_NAME: 'America/New_York', QUOTA_DEFAULT_EXPIRY: 'end-of-month' },
      }),
    ]);
    await addUsers(shanghai, [{ id: 'tz-user' }]);
    await addUsers(newYork, [{ id: 'tz-user' }]);
  });
  afterAll(async () => Promise.all([shanghai?.stop(), newYork?.stop()]));

  test('Asia/Shanghai, end-of-next-month by default, and validityDays; batch number in the zone', async () => {
    const byDefault = await createStrategy(shanghai, { name: 'default-expiry', condition: 'match-user("tz-user")' });
    const byDays = await createStrategy(shanghai, {
      name: 'days-expiry',
      condition: 'match-user("tz-user")',
      validityDays: 30,
      amount: 3,
    });
    await runAndWait(shanghai, byDefault.id);
    await runAndWait(shanghai, byDays.id);
    const [defaultRow] = await executionsOf(shanghai, byDefault.id);
    const [daysRow] = await executionsOf(shanghai, byDays.id);
    expect(new Date(defaultRow!.expiry_date).toISOString()).toBe('2026-03-31T15:59:59.000Z');
    expect(new Date(daysRow!.expiry_date).toISOString()).toBe('2026-03-03T15:59:59.000Z');
    // The run started at the clock's now: 1 February 00:30:00 in Shanghai.
    expect(defaultRow!.batch_number).toBe('20260201003000');
    const batches = await shanghai.app.services.orm.em
      .fork()
      .execute<{ expiry_date: Date; amount: string }[]>(
        `select expiry_date, amount::text from quota where user_id = 'tz-user' order by expiry_date`,
      );
    expect(batches.map((row) => [new Date(row.expiry_date).toISOString(), row.amount])).toEqual([
      ['2026-03-03T15:59:59.000Z', '3.00'],
      ['2026-03-31T15:59:59.000Z', '10.00'],
    ]);
    await checkInvariants(shanghai);
  });

  test('America/New_York with end-of-month: still March there', async () => {
    const strategy = await createStrategy(newYork, { name: 'ny-expiry', condition: 'match-user("tz-user")' });
    await runAndWait(newYork, strategy.id);
    const [row] = await executionsOf(newYork, strategy.id);
    expect(new Date(row!.expiry_date).toISOString()).toBe('2026-04-01T03:59:59.000Z');
    expect(row!.batch_number).toBe('20260331233000');
    await checkInvariants(newYork);
  });
});
