import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GatewayClient } from '../../src/modules/gateway/gateway.client.js';
import { parseCondition } from '../../src/modules/strategies/condition/index.js';
import { CandidateSource } from '../../src/modules/strategies/strategy-candidates.js';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  addUsers,
  checkInvariants,
  completedPerUser,
  createStrategy,
  em,
  numberedUsers,
  rechargeAuditsOf,
  runAndWait,
  runStrategy,
  triggerScan,
  waitForRun,
} from './strategy-support.js';

/**
 * How a strategy run spreads its work (SPEC §4 exactly-once under concurrency; STRATEGY_SCAN_CONCURRENCY):
 * users are granted and looked up several at a time, never more than the setting, and runs on two
 * instances racing over the same users still grant each user once. Per grant the run adds one
 * statement on quota_execute to the ledger's transaction, also for maxExecPerUser.
 */

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ label: 'strategy concurrency', env: { STRATEGY_SCAN_CONCURRENCY: '3' } });
});
afterAll(async () => app?.stop());

/** Wraps a gateway call (the real one still runs) to see how many are in flight at once. */
function watchInFlight(gateway: GatewayClient, method: 'setTotal' | 'getTotal'): { max: () => number; stop(): void } {
  const original = gateway[method] as (...args: unknown[]) => Promise<unknown>;
  let inFlight = 0;
  let max = 0;
  (gateway as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
    inFlight += 1;
    max = Math.max(max, inFlight);
    try {
      return await original.apply(gateway, args);
    } finally {
      inFlight -= 1;
    }
  };
  return {
    max: () => max,
    stop: () => {
      (gateway as unknown as Record<string, unknown>)[method] = original;
    },
  };
}

function scope(prefix: string, count: number): string {
  return `match-user(${Array.from({ length: count }, (_, i) => `"${prefix}-${String(i + 1).padStart(3, '0')}"`).join(', ')})`;
}

describe('STRATEGY_SCAN_CONCURRENCY', () => {
  test('bounds the gateway look-ups and the grants in flight, and the run uses all of it', async () => {
    const users = numberedUsers('conc', 12);
    await addUsers(app, users);
    // quota-le leaves every user to the evaluator, so each costs a look-up before its grant.
    const strategy = await createStrategy(app, {
      name: 'bounded',
      condition: `and(${scope('conc', 12)}, quota-le("m", 1000))`,
    });
    const gateway = app.app.services.gateway;
    const lookups = watchInFlight(gateway, 'getTotal');
    const grants = watchInFlight(gateway, 'setTotal');
    // Slow answers keep each call open long enough for the others to start beside it.
    app.simulator.setFault('getTotal', { kind: 'slow', delayMs: 200 });
    app.simulator.setFault('setTotal', { kind: 'slow', delayMs: 200 });
    try {
      const run = await runAndWait(app, strategy.id);
      expect(run).toMatchObject({ status: 'SUCCEEDED', succeeded: 12, failed: 0 });
    } finally {
      app.simulator.clearFaults();
      lookups.stop();
      grants.stop();
    }
    expect(lookups.max()).toBe(3);
    expect(grants.max()).toBe(3);
    await checkInvariants(app);
  });
});

describe('exactly once with several grants in flight', () => {
  let other: TestApp;
  beforeAll(async () => {
    other = await startTestApp({
      label: 'strategy concurrency b',
      databaseUrl: app.databaseUrl,
      simulator: app.simulator,
      env: { STRATEGY_SCAN_CONCURRENCY: '16' },
    });
  });
  afterAll(async () => other?.stop());

  test('a single strategy run on two instances at once, and their scans, grants each user once', async () => {
    const users = numberedUsers('twoinst', 90);
    await addUsers(
      app,
      users.map((user) => ({ ...user, company: 'TwoInst' })),
    );
    const strategy = await createStrategy(app, { name: 'two-instances', amount: 2, condition: 'belong-to("TwoInst")' });
    const runs = await Promise.all([
      runStrategy(app, strategy.id),
      runStrategy(other, strategy.id),
      triggerScan(app),
      runStrategy(other, strategy.id),
    ]);
    const finished = await Promise.all([
      waitForRun(app, runs[0]!.id),
      waitForRun(other, runs[1]!.id),
      waitForRun(app, runs[2]!.id),
      waitForRun(other, runs[3]!.id),
    ]);
    expect(finished.map((run) => run.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(finished.reduce((sum, run) => sum + run.succeeded, 0)).toBe(90);
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(users.map((user) => [user.id, 1])));
    expect((await rechargeAuditsOf(app, strategy.id)).length).toBe(90);
    for (const user of users) expect(app.simulator.getUser(user.id).total).toBe(200);
    const [left] = await em(app).execute<{ n: string }[]>(
      `select count(*)::text as n from quota_execute where strategy_id = ? and status <> 'completed'`,
      [strategy.id],
    );
    expect(left!.n).toBe('0');
    await checkInvariants(app);
  });

  test('fires racing on two instances stop at maxExecPerUser and leave no claim behind', async () => {
    const users = numberedUsers('firerace', 40);
    await addUsers(
      app,
      users.map((user) => ({ ...user, company: 'FireRace' })),
    );
    const strategy = await createStrategy(app, {
      name: 'fires-racing',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      maxExecPerUser: 2,
      condition: 'belong-to("FireRace")',
    });
    const runs = await Promise.all([
      runStrategy(app, strategy.id),
      runStrategy(other, strategy.id),
      runStrategy(app, strategy.id),
      runStrategy(other, strategy.id),
    ]);
    await Promise.all(runs.map((run, index) => waitForRun(index % 2 === 0 ? app : other, run.id)));
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(users.map((user) => [user.id, 2])));
    expect((await rechargeAuditsOf(app, strategy.id)).length).toBe(80);
    const [left] = await em(app).execute<{ n: string }[]>(
      `select count(*)::text as n from quota_execute where strategy_id = ? and status <> 'completed'`,
      [strategy.id],
    );
    expect(left!.n).toBe('0');
    await checkInvariants(app);
  });
});

describe('statements and columns', () => {
  test('a chunk of grants adds one statement on quota_execute, also when maxExecPerUser is checked', async () => {
    const users = numberedUsers('stmts', 20);
    await addUsers(
      app,
      users.map((user) => ({ ...user, company: 'Stmts' })),
    );
    const strategy = await createStrategy(app, {
      name: 'statement-budget',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      maxExecPerUser: 2,
      condition: 'belong-to("Stmts")',
    });
    const knex = app.app.services.orm.em.getConnection().getKnex() as unknown as {
      on(event: 'query', listener: (query: { sql?: string }) => void): void;
      off(event: 'query', listener: (query: { sql?: string }) => void): void;
    };
    let onExecutions = 0;
    const listener = (query: { sql?: string }) => {
      if (/quota_execute/.test(query.sql ?? '')) onExecutions += 1;
    };
    knex.on('query', listener);
    try {
      expect(await runAndWait(app, strategy.id)).toMatchObject({ status: 'SUCCEEDED', succeeded: 20 });
    } finally {
      knex.off('query', listener);
    }
    // One per chunk of grants (the 20 users are one chunk), plus a handful per run (stale claims, the
    // candidate query, the claim): one per grant would be 20 or more.
    expect(onExecutions).toBeLessThanOrEqual(5);
  });

  test('users decided in SQL come as ids; the evaluator gets the attributes of the others', async () => {
    await addUsers(app, [
      { id: 'cols-a', vip: 3, company: 'Cols' },
      { id: 'cols-b', vip: 1, company: 'Cols' },
    ]);
    const services = app.app.services;
    const source = new CandidateSource(services.orm, services.directory, services.employees.syncEnabled);
    const filter = { strategyId: '0', single: true, maxExecPerUser: 0, fireKey: 'test' };
    const read = async (condition: string) => {
      const parsed = parseCondition(condition, services.config.timeZone);
      if (!parsed.ok) throw new Error(parsed.error.message);
      const all = [];
      for await (const chunk of source.chunks(parsed.ast, filter, 1)) all.push(...chunk);
      return all;
    };
    expect(await read('and(belong-to("Cols"), is-vip(2))')).toEqual([{ decided: true, userId: 'cols-a' }]);
    const mixed = await read('and(belong-to("Cols"), or(is-vip(2), quota-le("m", 0)))');
    expect(mixed).toEqual([
      { decided: true, userId: 'cols-a' },
      { decided: false, user: expect.objectContaining({ id: 'cols-b', vip: 1, company: 'Cols' }) },
    ]);
  });
});
