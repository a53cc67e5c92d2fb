import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/until.js';
import {
  addUsers,
  checkInvariants,
  completedPerUser,
  createStrategy,
  em,
  executionsOf,
  numberedUsers,
} from './strategy-support.js';

/**
 * SPEC §4 and §9 schedules: periodic strategies on their own cron, rescheduled at once on this
 * instance and within seconds on another; two instances on one database run each fire once.
 */

let first: TestApp;
let second: TestApp;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  first = await startTestApp({ label: 'strategy schedules', schedule: true, env: { SCAN_CRON: '* * * * * *' } });
  second = await startTestApp({
    label: 'strategy schedules b',
    databaseUrl: first.databaseUrl,
    simulator: first.simulator,
    schedule: true,
    env: { SCAN_CRON: '* * * * * *' },
  });
});
afterAll(async () => {
  await second?.stop();
  await first?.stop();
});

function admin(app: TestApp, query: string, variables: Record<string, unknown> = {}) {
  return app.gql(query, variables, { token: app.adminToken });
}

const periodicKeys = (app: TestApp) => app.app.services.scheduler.scheduledKeys('strategy:');

async function eventually(check: () => boolean, timeoutMs = 8_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(100);
  }
}

async function databaseNow(): Promise<Date> {
  const [row] = await em(first).execute<{ now: Date }[]>('select now() as now');
  return new Date(row!.now);
}

/** Scheduled runs of a job that started after `since` (database time) and ended SUCCEEDED (and granted). */
async function finishedRunsSince(jobKey: string, since: Date, { granting = false } = {}): Promise<number> {
  const [row] = await em(first).execute<{ n: string }[]>(
    `select count(*)::text as n from job_run
      where job_key = ? and trigger = 'SCHEDULE' and status = 'SUCCEEDED' and started_at > ?
        and (not ? or succeeded > 0)`,
    [jobKey, since, granting],
  );
  return Number(row!.n);
}

/** Waits until neither instance runs anything. */
async function drain(): Promise<void> {
  for (const app of [first, second]) {
    const runner = app.app.services.jobs.runner;
    while (runner.activeRunIds.length > 0) await Promise.all(runner.activeRunIds.map((id) => runner.waitFor(id)));
  }
}

describe('rescheduling', () => {
  test('create, change the cron, disable, enable, retype and delete reschedule at once here and soon on the other instance', async () => {
    const strategy = await createStrategy(first, {
      name: 'rescheduled',
      type: 'PERIODIC',
      periodicExpr: '0 0 3 1 1 *',
      condition: 'false()',
    });
    const key = `strategy:${strategy.id}`;
    const scheduler = first.app.services.scheduler;
    expect(periodicKeys(first)).toContain(key);
    expect(scheduler.nextRun(key)?.toISOString()).toBe(strategy.nextRunAt);
    await eventually(() => periodicKeys(second).includes(key));

    await admin(
      first,
      'mutation($id: ID!) { updateStrategy(id: $id, input: { periodicExpr: "0 0 4 1 1 *" }) { id } }',
      {
        id: strategy.id,
      },
    );
    expect(scheduler.nextRun(key)?.getUTCHours()).toBe(20); // 04:00 in Shanghai
    await eventually(() => second.app.services.scheduler.nextRun(key)?.getUTCHours() === 20);

    await admin(first, 'mutation($id: ID!) { disableStrategy(id: $id) { id } }', { id: strategy.id });
    expect(periodicKeys(first)).not.toContain(key);
    await eventually(() => !periodicKeys(second).includes(key));

    await admin(second, 'mutation($id: ID!) { enableStrategy(id: $id) { id } }', { id: strategy.id });
    expect(periodicKeys(second)).toContain(key);
    await eventually(() => periodicKeys(first).includes(key));

    await admin(first, 'mutation($id: ID!) { updateStrategy(id: $id, input: { type: SINGLE }) { id } }', {
      id: strategy.id,
    });
    expect(periodicKeys(first)).not.toContain(key);
    await admin(
      first,
      'mutation($id: ID!) { updateStrategy(id: $id, input: { type: PERIODIC, periodicExpr: "@yearly" }) { id } }',
      {
        id: strategy.id,
      },
    );
    expect(periodicKeys(first)).toContain(key);

    await admin(first, 'mutation($id: ID!) { deleteStrategy(id: $id) }', { id: strategy.id });
    expect(periodicKeys(first)).not.toContain(key);
    await eventually(() => !periodicKeys(second).includes(key));
  });

  test('the scan, the monthly expiry and (HR off) no employee sync are scheduled', () => {
    for (const app of [first, second]) {
      const keys = app.app.services.scheduler.scheduledKeys();
      expect(keys).toEqual(expect.arrayContaining(['scan', 'expire']));
      expect(keys).not.toContain('employee-sync');
    }
  });
});

describe('two instances on one database', () => {
  test('a per-second periodic strategy: every fire runs once and grants each matched user once', async () => {
    const users = numberedUsers('tick', 3);
    await addUsers(first, users);
    const strategy = await createStrategy(first, {
      name: 'every-second',
      type: 'PERIODIC',
      periodicExpr: '* * * * * *',
      amount: 1,
      condition: 'match-user("tick-001", "tick-002", "tick-003")',
    });
    await eventually(() => periodicKeys(second).includes(`strategy:${strategy.id}`));
    // From now on both instances race for every fire. A fire is skipped while the strategy's previous
    // run is still going, so how many fires a fixed time holds depends on the machine: wait for three
    // that granted, each started once both instances had the schedule.
    const since = await databaseNow();
    await until(
      'three granting fires on two instances',
      async () => (await finishedRunsSince(`strategy:${strategy.id}`, since, { granting: true })) >= 3,
      20_000,
    );
    await admin(first, 'mutation($id: ID!) { disableStrategy(id: $id) { id } }', { id: strategy.id });
    await eventually(() => !periodicKeys(second).includes(`strategy:${strategy.id}`));
    await drain();

    const runs = await em(first).execute<
      { fire_key: string; status: string; instance_id: string; succeeded: number }[]
    >(
      `select fire_key, status, instance_id, succeeded from job_run where job_key = ? and trigger = 'SCHEDULE' order by fire_key`,
      [`strategy:${strategy.id}`],
    );
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(new Set(runs.map((run) => run.fire_key)).size).toBe(runs.length);
    const executions = await executionsOf(first, strategy.id);
    const perFire = new Map<string, string[]>();
    for (const execution of executions) {
      expect(execution.status).toBe('completed');
      perFire.set(execution.fire_key, [...(perFire.get(execution.fire_key) ?? []), execution.user_id]);
    }
    for (const [fireKey, userIds] of perFire) {
      expect([fireKey, userIds.sort()]).toEqual([fireKey, ['tick-001', 'tick-002', 'tick-003']]);
      expect(fireKey).toMatch(/^at:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
    }
    // Fires after the disable (before the other instance noticed it) run and find nothing to do.
    expect(runs.every((run) => run.status === 'SUCCEEDED')).toBe(true);
    const granting = runs.filter((run) => run.succeeded > 0);
    expect(granting.length).toBeGreaterThanOrEqual(2);
    expect(granting.every((run) => run.succeeded === 3)).toBe(true);
    expect([...perFire.keys()].sort()).toEqual(granting.map((run) => `at:${run.fire_key.split('@')[1]}`).sort());
    const grants = Object.values(await completedPerUser(first, strategy.id));
    expect(grants).toEqual([perFire.size, perFire.size, perFire.size]);
    await checkInvariants(first);
  });

  test('the per-second scan on both instances grants a single strategy once per user', async () => {
    await addUsers(first, numberedUsers('scanned', 5));
    const strategy = await createStrategy(second, {
      name: 'scanned-single',
      condition: 'match-user("scanned-001", "scanned-002", "scanned-003", "scanned-004", "scanned-005")',
    });
    // Two scans that started after the strategy existed, however long the machine takes to run them
    // (a scan is skipped while the previous one is still going): both saw it, the first granted.
    const since = await databaseNow();
    await until('two scans since the strategy was created', async () => (await finishedRunsSince('scan', since)) >= 2);
    await drain();
    expect(await completedPerUser(first, strategy.id)).toEqual({
      'scanned-001': 1,
      'scanned-002': 1,
      'scanned-003': 1,
      'scanned-004': 1,
      'scanned-005': 1,
    });
    // Once per user holds by the database's constraint whatever the scheduling does; what the schedule
    // itself must do is run each per-second fire once, on one of the two instances: every scheduled
    // scan is keyed by its scheduled second (the same on both instances), no key twice, several fires.
    const scans = await em(first).execute<{ fire_key: string | null }[]>(
      `select fire_key from job_run where job_key = 'scan' and trigger = 'SCHEDULE'`,
    );
    expect(scans.length).toBeGreaterThanOrEqual(2);
    for (const { fire_key } of scans) expect(fire_key).toMatch(/^scan@\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$/);
    expect(new Set(scans.map((scan) => scan.fire_key)).size).toBe(scans.length);
    await admin(first, 'mutation($id: ID!) { disableStrategy(id: $id) { id } }', { id: strategy.id });
    await checkInvariants(first);
  });
});
