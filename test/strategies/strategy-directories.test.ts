import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { dropDatabase, executeOn, uniqueDatabaseUrl } from '../support/database.js';
import { addUsers, checkInvariants, completedPerUser, createStrategy, em, runAndWait } from './strategy-support.js';

/**
 * SPEC §3 belong-to with employee sync on (department path elements, else the company), and scans
 * when the user directory lives in its own database (AUTH_DATABASE_URL): the condition runs there,
 * the exactly-once rules here, in keyset chunks.
 */

async function addEmployees(app: TestApp, employees: [string, string][]): Promise<void> {
  for (const [employeeNumber, path] of employees) {
    await em(app).execute(
      'insert into employee_department (employee_number, username, dept_full_level_names) values (?, ?, ?)',
      [employeeNumber, `Employee ${employeeNumber}`, path],
    );
  }
}

describe('belong-to with employee sync on (shared database)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ label: 'strategy belong to', env: { HR_SYNC_ENABLED: 'true' } });
    await addEmployees(app, [
      ['E1', 'Corp,R&D,Platform'],
      ['E2', 'Corp,Sales'],
    ]);
    await addUsers(app, [
      { id: 'bt-platform', employeeNumber: 'E1', company: 'Sales' },
      { id: 'bt-sales', employeeNumber: 'E2', company: 'R&D' },
      { id: 'bt-no-record', employeeNumber: 'E404', company: 'R&D' },
      { id: 'bt-no-number', company: 'Platform' },
    ]);
  });
  afterAll(async () => app?.stop());

  test('an employee matches any element of their path (not their company); others match by company', async () => {
    const scope = 'match-user("bt-platform", "bt-sales", "bt-no-record", "bt-no-number")';
    const cases: [string, string[]][] = [
      ['belong-to("R&D")', ['bt-no-record', 'bt-platform']],
      ['belong-to("Corp")', ['bt-platform', 'bt-sales']],
      ['belong-to("Platform")', ['bt-no-number', 'bt-platform']],
      ['belong-to("Sales")', ['bt-sales']],
      ['belong-to("Plat")', []],
    ];
    for (const [index, [condition, expected]] of cases.entries()) {
      const strategy = await createStrategy(app, { name: `belong-${index}`, condition: `and(${scope}, ${condition})` });
      await runAndWait(app, strategy.id);
      expect([condition, Object.keys(await completedPerUser(app, strategy.id))]).toEqual([condition, expected]);
    }
    await checkInvariants(app);
  });

  test('with quota-le in the mix the evaluator sees the same departments', async () => {
    app.simulator.setUser('bt-sales', { total: 100_000, used: 100_000 });
    const strategy = await createStrategy(app, {
      name: 'belong-and-quota',
      condition: 'and(match-user("bt-platform", "bt-sales"), or(quota-le("m", 0), belong-to("Platform")))',
    });
    await runAndWait(app, strategy.id);
    expect(Object.keys(await completedPerUser(app, strategy.id))).toEqual(['bt-platform', 'bt-sales']);
    await checkInvariants(app);
  });
});

describe('the user directory in its own database', () => {
  let app: TestApp;
  let directoryUrl: string;
  const USERS = 1100;

  beforeAll(async () => {
    directoryUrl = uniqueDatabaseUrl('strategy directory');
    await executeOn(
      directoryUrl,
      `create table auth_users (id text primary key, created_at timestamptz default now(), updated_at timestamptz,
        access_time timestamptz, name text, github_id text, github_name text, vip integer not null default 0,
        phone text, email text, company text, employee_number text, github_star text)`,
      // Even users are VIP 5; odd users i % 4 = 1 have an employee record under R&D, i % 4 = 3 have none.
      `insert into auth_users (id, vip, employee_number)
       select 'dir-' || lpad(i::text, 5, '0'), case when i % 2 = 0 then 5 else 0 end,
              case when i % 2 = 1 then 'D' || i end
       from generate_series(1, ${USERS}) as i`,
    );
    app = await startTestApp({
      label: 'strategy separate directory',
      env: { AUTH_DATABASE_URL: directoryUrl, HR_SYNC_ENABLED: 'true' },
    });
    await em(app).execute(
      `insert into employee_department (employee_number, username, dept_full_level_names)
       select 'D' || i, 'Employee ' || i, 'Corp,R&D' from generate_series(1, ${USERS}) as i where i % 4 = 1`,
    );
  });
  afterAll(async () => {
    await app?.stop();
    if (directoryUrl) await dropDatabase(directoryUrl);
  });

  test('scans every chunk, evaluates belong-to against the mirror, and grants once', async () => {
    expect(app.app.services.directory.sharesMainDatabase).toBe(false);
    const strategy = await createStrategy(app, {
      name: 'separate-directory',
      condition: 'or(belong-to("R&D"), is-vip(5))',
      amount: 1,
    });
    const first = await runAndWait(app, strategy.id);
    const expected = USERS / 2 + Math.ceil(USERS / 4);
    expect(first).toMatchObject({ status: 'SUCCEEDED', succeeded: expected, failed: 0 });
    const granted = await completedPerUser(app, strategy.id);
    expect(Object.keys(granted)).toHaveLength(expected);
    expect(granted['dir-00001']).toBe(1);
    expect(granted['dir-00002']).toBe(1);
    expect(granted['dir-00003']).toBeUndefined();
    const second = await runAndWait(app, strategy.id);
    expect(second).toMatchObject({ status: 'SUCCEEDED', succeeded: 0 });
    expect(Object.values(await completedPerUser(app, strategy.id)).every((count) => count === 1)).toBe(true);
    await checkInvariants(app);
  }, 120_000);

  test('maxExecPerUser is applied per chunk against this database', async () => {
    const strategy = await createStrategy(app, {
      name: 'separate-periodic',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      maxExecPerUser: 2,
      condition: 'match-user("dir-00010", "dir-00011", "dir-01099")',
    });
    for (let i = 0; i < 3; i++) await runAndWait(app, strategy.id);
    expect(await completedPerUser(app, strategy.id)).toEqual({ 'dir-00010': 2, 'dir-00011': 2, 'dir-01099': 2 });
    await checkInvariants(app);
  });
});
