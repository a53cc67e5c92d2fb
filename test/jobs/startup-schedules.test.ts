import { afterAll, beforeAll, expect, test } from 'vitest';
import { zonedParts } from '../../src/clock.js';
import { HrSimulator } from '../../src/modules/employees/hr-simulator.js';
import { DEPARTMENTS_KEY, EMPLOYEES_KEY, SMALL_DEPARTMENTS, SMALL_EMPLOYEES } from '../employees/hr-support.js';
import { startTestApp, type TestApp } from '../support/app.js';

/** SPEC §7, §9: with HR sync enabled, employee sync is scheduled daily and runs once at start while the mirror is empty. */

let hr: HrSimulator;
let first: TestApp;
let env: Record<string, string>;

beforeAll(async () => {
  hr = new HrSimulator({
    employeesKey: EMPLOYEES_KEY,
    departmentsKey: DEPARTMENTS_KEY,
    fixture: { employees: SMALL_EMPLOYEES, departments: SMALL_DEPARTMENTS },
  });
  await hr.start(0);
  env = {
    HR_SYNC_ENABLED: 'true',
    HR_EMPLOYEES_URL: hr.employeesUrl,
    HR_DEPARTMENTS_URL: hr.departmentsUrl,
    HR_EMPLOYEES_KEY: EMPLOYEES_KEY,
    HR_DEPARTMENTS_KEY: DEPARTMENTS_KEY,
  };
  first = await startTestApp({ label: 'startup schedules', schedule: true, env });
});
afterAll(async () => {
  await first?.stop();
  await hr?.stop();
});

async function startupRuns(app: TestApp) {
  return app.app.services.orm.em
    .fork()
    .execute<{ id: string; status: string; type: string }[]>(
      `select id::text, status, type from job_run where trigger = 'STARTUP' order by id`,
    );
}

test('an empty mirror is synced once at start; the daily sync is scheduled', async () => {
  const [run, ...others] = await startupRuns(first);
  expect(others).toHaveLength(0);
  expect(run!.type).toBe('EMPLOYEE_SYNC');
  await first.app.services.jobs.runner.waitFor(run!.id);
  const [done] = await startupRuns(first);
  expect(done!.status).toBe('SUCCEEDED');
  const [mirror] = await first.app.services.orm.em
    .fork()
    .execute<{ n: string }[]>('select count(*)::text as n from employee_department');
  expect(Number(mirror!.n)).toBe(SMALL_EMPLOYEES.length);
  expect(first.app.services.scheduler.scheduledKeys()).toEqual(
    expect.arrayContaining(['scan', 'expire', 'employee-sync']),
  );
});

test('SPEC §9 times, in TZ_NAME: monthly expiry at 00:00 on the 1st, employee sync at 01:00 daily', () => {
  const { scheduler, config } = first.app.services;
  const expiry = zonedParts(scheduler.nextRun('expire')!, config.timeZone);
  expect({ day: expiry.day, hour: expiry.hour, minute: expiry.minute, second: expiry.second }).toEqual({
    day: 1,
    hour: 0,
    minute: 0,
    second: 0,
  });
  const sync = zonedParts(scheduler.nextRun('employee-sync')!, config.timeZone);
  expect({ hour: sync.hour, minute: sync.minute, second: sync.second }).toEqual({ hour: 1, minute: 0, second: 0 });
  // Daily: the next fire is within a day.
  expect(scheduler.nextRun('employee-sync')!.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
});

test('a start with a filled mirror does not sync again', async () => {
  const second = await startTestApp({
    label: 'startup schedules b',
    databaseUrl: first.databaseUrl,
    simulator: first.simulator,
    schedule: true,
    env,
  });
  try {
    expect(await startupRuns(second)).toHaveLength(1);
    expect(second.app.services.scheduler.scheduledKeys()).toContain('employee-sync');
  } finally {
    await second.stop();
  }
});
