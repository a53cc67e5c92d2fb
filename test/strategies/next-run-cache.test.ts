import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import { nextFireTimes } from '../../src/modules/jobs/cron.js';
import { NextRunCache } from '../../src/modules/strategies/next-run-cache.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { createStrategy } from './strategy-support.js';

/**
 * The cache behind Strategy.nextRunAt: the pattern is parsed once, but the answer always follows the
 * clock — a clock at or past the cached next fire, or set back, never gets a stale instant.
 */

const SHANGHAI = 'Asia/Shanghai';

describe('NextRunCache', () => {
  test('the clock passing the cached next fire gives the following fire, not the stale one', () => {
    const cache = new NextRunCache();
    const clock = new SettableClock(SHANGHAI, '2026-11-15T04:00:00Z');
    const next = (pattern: string) => cache.nextRun(pattern, SHANGHAI, clock.now())?.toISOString();

    // 08:00 in Shanghai is 00:00 UTC.
    expect(next('0 0 8 * * *')).toBe('2026-11-16T00:00:00.000Z');
    clock.set('2026-11-15T23:59:59.999Z');
    expect(next('0 0 8 * * *')).toBe('2026-11-16T00:00:00.000Z');
    // At the fire itself, the next one is strictly later.
    clock.set('2026-11-16T00:00:00.000Z');
    expect(next('0 0 8 * * *')).toBe('2026-11-17T00:00:00.000Z');
    clock.advance(1);
    expect(next('0 0 8 * * *')).toBe('2026-11-17T00:00:00.000Z');
    clock.advance(3 * 86_400_000);
    expect(next('0 0 8 * * *')).toBe('2026-11-20T00:00:00.000Z');
  });

  test('a clock set back is answered from its own instant', () => {
    const cache = new NextRunCache();
    const clock = new SettableClock(SHANGHAI, '2026-11-15T04:00:00Z');
    expect(cache.nextRun('0 0 8 * * *', SHANGHAI, clock.now())?.toISOString()).toBe('2026-11-16T00:00:00.000Z');
    clock.set('2026-11-10T04:00:00Z');
    expect(cache.nextRun('0 0 8 * * *', SHANGHAI, clock.now())?.toISOString()).toBe('2026-11-11T00:00:00.000Z');
  });

  test('answers what nextFireTimes answers, step by step through fires and DST changes', () => {
    const cache = new NextRunCache();
    const cases: { pattern: string; zone: string; start: string; stepMs: number }[] = [
      { pattern: '0 0 8 * * *', zone: SHANGHAI, start: '2026-11-15T23:00:00Z', stepMs: 7 * 60_000 + 333 },
      { pattern: '*/20 * * * * *', zone: 'UTC', start: '2026-01-01T00:00:00Z', stepMs: 7_001 },
      { pattern: '30 2 * * *', zone: 'Europe/Berlin', start: '2026-03-28T00:00:00Z', stepMs: 37 * 60_000 },
      { pattern: '30 2 * * *', zone: 'Europe/Berlin', start: '2026-10-24T00:00:00Z', stepMs: 37 * 60_000 },
      { pattern: '0 0 1 * *', zone: 'America/New_York', start: '2026-01-31T00:00:00Z', stepMs: 5 * 3_600_000 },
      { pattern: '@hourly', zone: 'America/New_York', start: '2026-11-01T04:00:00Z', stepMs: 23 * 60_000 },
    ];
    for (const { pattern, zone, start, stepMs } of cases) {
      let at = new Date(start).getTime();
      for (let step = 0; step < 200; step++, at += stepMs) {
        const now = new Date(at);
        const expected = nextFireTimes(pattern, zone, 1, now)[0]?.toISOString() ?? null;
        expect(
          cache.nextRun(pattern, zone, now)?.toISOString() ?? null,
          `${pattern} in ${zone} at ${now.toISOString()}`,
        ).toBe(expected);
      }
    }
  });

  test('keeps patterns apart per zone, and throws for an invalid pattern', () => {
    const cache = new NextRunCache();
    const now = new Date('2026-11-15T04:00:00Z');
    expect(cache.nextRun('0 0 8 * * *', SHANGHAI, now)?.toISOString()).toBe('2026-11-16T00:00:00.000Z');
    expect(cache.nextRun('0 0 8 * * *', 'UTC', now)?.toISOString()).toBe('2026-11-15T08:00:00.000Z');
    expect(() => cache.nextRun('61 * * * *', 'UTC', now)).toThrow();
    expect(cache.size).toBe(2);
  });

  test('holds at most its bound, the oldest pattern going first', () => {
    const cache = new NextRunCache(3);
    const now = new Date('2026-11-15T04:00:00Z');
    for (const minute of [1, 2, 3, 4]) cache.nextRun(`0 ${minute} * * * *`, 'UTC', now);
    expect(cache.size).toBe(3);
    // Still correct after eviction: the evicted pattern is parsed again.
    expect(cache.nextRun('0 1 * * * *', 'UTC', now)?.toISOString()).toBe('2026-11-15T04:01:00.000Z');
    expect(cache.size).toBe(3);
  });
});

describe('Strategy.nextRunAt', () => {
  const clock = new SettableClock(SHANGHAI, '2026-11-15T04:00:00Z');
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ label: 'next run cache', clock });
  });
  afterAll(async () => app?.stop());

  test('follows the settable clock past each fire, for every strategy of a page', async () => {
    for (const name of ['daily-a', 'daily-b']) {
      await createStrategy(app, { name, type: 'PERIODIC', periodicExpr: '0 0 8 * * *' });
    }
    const page = async () => {
      const result = await app.gql<{ strategies: { nodes: { nextRunAt: string | null }[] } }>(
        'query { strategies(first: 20) { nodes { nextRunAt } } }',
        {},
        { token: app.adminToken },
      );
      return result.data!.strategies.nodes.map((node) => node.nextRunAt);
    };
    expect(await page()).toEqual(['2026-11-16T00:00:00.000Z', '2026-11-16T00:00:00.000Z']);
    clock.set('2026-11-16T00:00:00.000Z');
    expect(await page()).toEqual(['2026-11-17T00:00:00.000Z', '2026-11-17T00:00:00.000Z']);
    clock.set('2026-11-20T12:00:00Z');
    expect(await page()).toEqual(['2026-11-21T00:00:00.000Z', '2026-11-21T00:00:00.000Z']);
  });
});
