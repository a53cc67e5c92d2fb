import { afterAll, beforeAll, expect, test } from 'vitest';
import { checkInvariants, em, grant } from '../quota/quota-support.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * QUOTA_SYNC_CRON schedules quota sync (SPEC §9 has no schedule for it; off unless set): a gateway
 * total that drifted from Σ VALID is set right by the next fire without anyone calling triggerScan.
 */

const EXPIRY = '2099-12-31T15:59:59.000Z';

let scheduled: TestApp;

beforeAll(async () => {
  scheduled = await startTestApp({
    label: 'quota sync schedule',
    schedule: true,
    env: { QUOTA_SYNC_CRON: '* * * * * *' },
  });
});
afterAll(async () => {
  await scheduled?.stop();
});

test('with QUOTA_SYNC_CRON, quota sync runs on its own and corrects a drifted total', async () => {
  expect(scheduled.app.services.scheduler.scheduledKeys()).toContain('sync-quotas');
  await grant(scheduled, 'drifted-user', 500, EXPIRY);
  const committed = scheduled.simulator.getUser('drifted-user').total;
  // The gateway lost the write (as after a timeout whose write was applied late, or a crash).
  scheduled.simulator.setUser('drifted-user', { total: 123 });

  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && scheduled.simulator.getUser('drifted-user').total !== committed) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(scheduled.simulator.getUser('drifted-user').total).toBe(committed);
  const runs = await em(scheduled).execute<{ status: string }[]>(
    `select status from job_run where type = 'SYNC_QUOTAS' and trigger = 'SCHEDULE'`,
  );
  expect(runs.length).toBeGreaterThan(0);
  await checkInvariants(scheduled);
});

test('without it, quota sync is not scheduled', async () => {
  const plain = await startTestApp({
    label: 'quota sync unscheduled',
    databaseUrl: scheduled.databaseUrl,
    simulator: scheduled.simulator,
    schedule: true,
  });
  try {
    expect(plain.app.services.scheduler.scheduledKeys()).not.toContain('sync-quotas');
    expect(plain.app.services.scheduler.scheduledKeys()).toEqual(expect.arrayContaining(['scan', 'expire']));
  } finally {
    await plain.stop();
  }
});
