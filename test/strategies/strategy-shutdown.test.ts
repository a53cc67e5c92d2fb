import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
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
  app.simulator.setFault('setTotal', { kind: 'slow', delayMs: 150 });
  let runId: string;
  try {
    const run = await other.app.services.strategies.runStrategy(em(other), 'admin-1', strategy.id);
    runId = run.id;
    // Let some grants through, then shut the instance down.
    await new Promise((resolve) => setTimeout(resolve, 400));
  } finally {
    await other.stop();
    app.simulator.clearFaults();
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
