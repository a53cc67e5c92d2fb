import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/until.js';
import {
  addUsers,
  checkInvariants,
  completedPerUser,
  createStrategy,
  em,
  numberedUsers,
  runAndWait,
} from './strategy-support.js';

/**
 * SPEC §9 shutdown: a strategy run stops at a safe point (between users), its run is not left RUNNING,
 * the claims it will not grant are released, and the next run grants the rest exactly once.
 */

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ label: 'strategy shutdown' });
});
afterAll(async () => app?.stop());

test('stopping an instance mid-run leaves no RUNNING run and no processing claim; the next run finishes the job', async () => {
  const users = numberedUsers('halt', 40);
  await addUsers(app, users);
  const strategy = await createStrategy(app, {
    name: 'interrupted',
    condition: 'is-vip(0) and not match-user("nobody")',
  });
  const other = await startTestApp({
    label: 'strategy shutdown b',
    databaseUrl: app.databaseUrl,
    simulator: app.simulator,
    env: { SHUTDOWN_TIMEOUT_MS: '10000' },
  });
  // The grants' gateway calls are held, so the stop comes while some are in flight, however fast or
  // slow the run gets there (a fixed sleep here was too short on a slow box: nothing granted yet).
  app.simulator.setFault('setTotal', { kind: 'hold' });
  let runId: string;
  try {
    const run = await other.app.services.strategies.runStrategy(em(other), 'admin-1', strategy.id);
    runId = run.id;
    await until('a grant of the run at the gateway', () => app.simulator.calls({ route: 'setTotal' }).length > 0);
  } finally {
    // Shut the instance down (its run is told to stop before the next user), then let the held
    // calls go on: the users already sent are granted, the rest are left for the next run.
    const stopped = other.stop();
    app.simulator.clearFaults();
    app.simulator.release();
    await stopped;
  }
  const [row] = await em(app).execute<{ status: string; error: string | null; succeeded: number }[]>(
    'select status, error, succeeded from job_run where id = ?',
    [runId],
  );
  expect(row).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^INTERRUPTED: /) });
  expect(row!.succeeded).toBeGreaterThan(0);
  expect(row!.succeeded).toBeLessThan(40);
  const processing = await em(app).execute(
    `select 1 from quota_execute where strategy_id = ? and status = 'processing'`,
    [strategy.id],
  );
  expect(processing).toHaveLength(0);

  const next = await runAndWait(app, strategy.id);
  expect(next.succeeded).toBe(40 - row!.succeeded);
  expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(users.map((user) => [user.id, 1])));
  await checkInvariants(app);
});
