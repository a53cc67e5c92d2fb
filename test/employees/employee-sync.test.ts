import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { capturingLogger } from '../support/logger.js';
import {
  dept,
  emp,
  type HrTestContext,
  mirror,
  RecordingListener,
  SMALL_DEPARTMENTS,
  SMALL_EMPLOYEES,
  startHrTestApp,
} from './hr-support.js';

let ctx: HrTestContext;
const listener = new RecordingListener();
const logger = silentLogger();

beforeAll(async () => {
  ctx = await startHrTestApp('employee_sync');
  ctx.sync.addChangeListener(listener);
});

afterAll(async () => {
  ctx.sync.removeChangeListener(listener);
  await ctx?.stop();
});

beforeEach(async () => {
  ctx.hr.reset();
  listener.reset();
  await ctx.em().execute('delete from employee_department');
});

afterEach(() => {
  ctx.hr.clearFaults();
});

async function syncOk() {
  return ctx.sync.sync(ctx.t.app.services.orm, logger);
}

/** Runs a sync that must fail, and returns the error. */
async function syncFails(service = ctx.fastSync()): Promise<DomainError> {
  const error = await service.sync(ctx.t.app.services.orm, logger).then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(DomainError);
  const domain = error as DomainError;
  expect(domain.code).toBe(ErrorCode.HR_SYNC_FAILED);
  expect(domain.message.startsWith('HR_SYNC_FAILED: ')).toBe(true);
  return domain;
}

describe('reconciliation (SPEC §7)', () => {
  it('inserts every employee of a first sync with the department path root → leaf', async () => {
    const result = await syncOk();
    expect(await mirror(ctx.em())).toEqual({
      E001: { username: 'Li Lei', path: 'Corp,R&D,Platform', depId: '3' },
      E002: { username: 'Han Meimei', path: 'Corp,Sales', depId: '4' },
      E003: { username: 'Zhang Wei', path: 'Corp,R&D', depId: '2' },
      E004: { username: 'Wang Fang', path: 'Corp,R&D,Apps', depId: '5' },
    });
    expect(result).toMatchObject({ processed: 4, succeeded: 4, failed: 0, unchanged: 0, skipped: 0 });
    expect(result.changes).toEqual({ added: ['E001', 'E002', 'E003', 'E004'], moved: [], renamed: [], removed: [] });
  });

  it('changes nothing when the feed is unchanged: no beforeCommit, and afterCommit with no changes (owed work is retried there)', async () => {
    await syncOk();
    const before = await ctx.snapshot();
    listener.reset();
    const result = await syncOk();
    expect(await ctx.snapshot()).toEqual(before);
    expect(result).toMatchObject({ processed: 4, succeeded: 4, failed: 0, unchanged: 4 });
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [] });
    expect(listener.before).toEqual([]);
    expect(listener.after).toEqual([{ added: [], moved: [], renamed: [], removed: [] }]);
  });

  it('updates a changed name (renamed) and a changed department (moved), touching no one else', async () => {
    await syncOk();
    const before = (await ctx.snapshot()) as { employee_number: string; update_time: string }[];
    listener.reset();
    ctx.hr.setFixture({
      employees: [
        emp('E001', 'Li Lei (Platform lead)', 3), // renamed
        emp('E002', 'Han Meimei', 5), // moved Sales → R&D/Apps
        emp('E003', 'Zhang Wei Jr', 4), // renamed and moved
        emp('E004', 'Wang Fang', 5), // unchanged
      ],
    });
    const result = await syncOk();
    expect(result.changes).toEqual({ added: [], moved: ['E002', 'E003'], renamed: ['E001', 'E003'], removed: [] });
    expect(result).toMatchObject({ processed: 4, succeeded: 4, failed: 0, unchanged: 1 });
    const after = await mirror(ctx.em());
    expect(after.E001).toEqual({ username: 'Li Lei (Platform lead)', path: 'Corp,R&D,Platform', depId: '3' });
    expect(after.E002).toEqual({ username: 'Han Meimei', path: 'Corp,R&D,Apps', depId: '5' });
    expect(after.E003).toEqual({ username: 'Zhang Wei Jr', path: 'Corp,Sales', depId: '4' });
    const snapshot = (await ctx.snapshot()) as { employee_number: string; update_time: string }[];
    const time = (rows: typeof snapshot, number: string) =>
      new Date(rows.find((row) => row.employee_number === number)?.update_time ?? 0).getTime();
    // Only changed rows get a new update_time.
    expect(time(snapshot, 'E004')).toBe(time(before, 'E004'));
    expect(time(snapshot, 'E001')).toBeGreaterThan(time(before, 'E001'));
  });

  it('reports everyone under a renamed department as moved (their path changed)', async () => {
    await syncOk();
    listener.reset();
    ctx.hr.setFixture({
      departments: SMALL_DEPARTMENTS.map((d) => (d.Id === '2' ? { ...d, Name: 'Research' } : d)),
    });
    const result = await syncOk();
    expect(result.changes.moved).toEqual(['E001', 'E003', 'E004']);
    expect((await mirror(ctx.em())).E004?.path).toBe('Corp,Research,Apps');
  });

  it('moving to another department with the same path updates dep_id without reporting a move', async () => {
    await syncOk();
    ctx.hr.setFixture({
      departments: [...SMALL_DEPARTMENTS, dept(6, 2, 'Platform')],
      employees: SMALL_EMPLOYEES.map((e) => (e.badge === 'E001' ? { ...e, DepID: '6' } : e)),
    });
    const result = await syncOk();
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [] });
    expect((await mirror(ctx.em())).E001).toEqual({ username: 'Li Lei', path: 'Corp,R&D,Platform', depId: '6' });
  });

  it('removes employees that left the feed', async () => {
    await syncOk();
    ctx.hr.setFixture({ employees: SMALL_EMPLOYEES.filter((e) => e.badge !== 'E002') });
    const result = await syncOk();
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [{ employeeNumber: 'E002' }] });
    expect(Object.keys(await mirror(ctx.em()))).toEqual(['E001', 'E003', 'E004']);
    expect(result).toMatchObject({ processed: 4, succeeded: 4, failed: 0 });
  });

  it('adds new employees next to existing ones', async () => {
    await syncOk();
    ctx.hr.setFixture({ employees: [...SMALL_EMPLOYEES, emp('E005', 'Liu Yang', 1)] });
    const result = await syncOk();
    expect(result.changes.added).toEqual(['E005']);
    expect((await mirror(ctx.em())).E005).toEqual({ username: 'Liu Yang', path: 'Corp', depId: '1' });
  });

  it('skips an employee whose DepID is unknown: a new one is not inserted, a known one is kept as it is', async () => {
    await syncOk();
    const before = (await ctx.snapshot()) as { employee_number: string }[];
    ctx.hr.setFixture({
      employees: [
        emp('E001', 'Li Lei renamed', 99), // known, unknown department: kept unchanged, not removed
        { ...emp('E002', 'Han Meimei', 4), DepID: '' }, // no department: same
        emp('E003', 'Zhang Wei', 2),
        emp('E004', 'Wang Fang', 5),
        emp('E009', 'New Person', 42), // new, unknown department: not inserted
      ],
    });
    const result = await syncOk();
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [] });
    expect(result).toMatchObject({ processed: 5, succeeded: 2, failed: 3, skipped: 3 });
    expect(await ctx.snapshot()).toEqual(before);
  });

  it('uses the first record of a badge that appears twice, counting the repeat as failed', async () => {
    ctx.hr.setFixture({ employees: [...SMALL_EMPLOYEES, emp('E001', 'Impostor', 4)] });
    const result = await syncOk();
    expect((await mirror(ctx.em())).E001?.username).toBe('Li Lei');
    expect(result).toMatchObject({ processed: 5, succeeded: 4, failed: 1 });
  });

  it('keeps the walk safe on a cyclic or orphaned hierarchy and still syncs those employees', async () => {
    ctx.hr.setFixture({
      departments: [...SMALL_DEPARTMENTS, dept(7, 8, 'Loop A'), dept(8, 7, 'Loop B'), dept(9, 404, 'Orphan')],
      employees: [...SMALL_EMPLOYEES, emp('E007', 'In a loop', 7), emp('E009', 'Orphaned', 9)],
    });
    const { logger: capturing, lines } = capturingLogger();
    await ctx.sync.sync(ctx.t.app.services.orm, capturing);
    const rows = await mirror(ctx.em());
    expect(rows.E007?.path).toBe('Loop B,Loop A');
    expect(rows.E009?.path).toBe('Orphan');
    // SPEC §7: cycles and unknown parents end the walk "and are logged".
    const warnings = lines().filter((line) => line.level === 40 && /department hierarchy/.test(String(line.msg)));
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'cycle' }),
        expect.objectContaining({ kind: 'unknown-parent', departmentId: '9', parentId: '404' }),
      ]),
    );
  });

  it('reads XML-wrapped feeds the same way', async () => {
    ctx.hr.setXml(true);
    const result = await syncOk();
    expect(result.changes.added).toHaveLength(4);
    expect((await mirror(ctx.em())).E001?.path).toBe('Corp,R&D,Platform');
  });

  it('serialises concurrent syncs (no duplicate-key failure, one consistent result)', async () => {
    const [first, second] = await Promise.all([syncOk(), syncOk()]);
    expect(first.changes.added.length + second.changes.added.length).toBe(4);
    expect(Object.keys(await mirror(ctx.em()))).toHaveLength(4);
  });

  it('syncs the generated demo organisation (400 employees, four levels)', async () => {
    ctx.hr.setFixture((await import('../../src/modules/employees/hr-fixture.js')).generateHrFixture());
    const result = await syncOk();
    expect(result).toMatchObject({ processed: 400, succeeded: 400, failed: 0 });
    const rows = Object.values(await mirror(ctx.em()));
    expect(rows).toHaveLength(400);
    expect(new Set(rows.map((row) => row.path.split(',').length))).toEqual(new Set([2, 3, 4]));
    expect(rows.every((row) => row.path.startsWith('Acme Group,'))).toBe(true);
  });
});

describe('the change listener hooks', () => {
  it('beforeCommit runs inside the transaction (sees the new rows), afterCommit after it, with the same changes', async () => {
    await syncOk();
    expect(listener.before).toEqual([{ added: ['E001', 'E002', 'E003', 'E004'], moved: [], renamed: [], removed: [] }]);
    expect(listener.rowsSeenBefore).toEqual([4]);
    expect(listener.after).toEqual(listener.before);
  });

  it('gives moved, renamed and removed employees to beforeCommit while their rows are still locked', async () => {
    await syncOk();
    listener.reset();
    ctx.hr.setFixture({
      employees: [emp('E001', 'Li Lei', 4), emp('E002', 'Han M.', 4), emp('E003', 'Zhang Wei', 2)],
    });
    await syncOk();
    expect(listener.before).toEqual([
      { added: [], moved: ['E001'], renamed: ['E002'], removed: [{ employeeNumber: 'E004' }] },
    ]);
    expect(listener.rowsSeenBefore).toEqual([3]);
  });

  it('a failing beforeCommit rolls the whole sync back (its own writes too) → HR_SYNC_FAILED', async () => {
    await syncOk();
    const before = await ctx.snapshot();
    listener.reset();
    listener.onBefore = (em) =>
      em.execute(`update employee_department set username = 'written by listener'`).then(() => undefined);
    listener.failBefore = new Error('permissions store unavailable');
    ctx.hr.setFixture({ employees: SMALL_EMPLOYEES.slice(0, 3) });
    const error = await syncFails(ctx.sync);
    expect(error.message).toMatch(/^HR_SYNC_FAILED: /);
    expect(error.message).not.toContain('permissions store unavailable'); // internal detail stays in the log
    expect(await ctx.snapshot()).toEqual(before);
    expect(listener.after).toEqual([]);
  });

  it('a failing afterCommit is logged; the committed sync stands', async () => {
    listener.failAfter = new Error('gateway down');
    const result = await syncOk();
    expect(result.changes.added).toHaveLength(4);
    expect(Object.keys(await mirror(ctx.em()))).toHaveLength(4);
  });
});

describe('refusals: HR_SYNC_FAILED and nothing changed (SPEC §7 Decision)', () => {
  beforeEach(async () => {
    await syncOk();
    listener.reset();
  });

  async function expectRefused(pattern: RegExp, service = ctx.fastSync()) {
    const before = await ctx.snapshot();
    const error = await syncFails(service);
    expect(error.message).toMatch(pattern);
    expect(await ctx.snapshot()).toEqual(before);
    expect(listener.before).toEqual([]);
    expect(listener.after).toEqual([]);
    return error;
  }

  it('refuses an empty employees feed', async () => {
    ctx.hr.setFixture({ employees: [] });
    await expectRefused(/employees feed is empty/, ctx.sync);
  });

  it('refuses an empty departments feed', async () => {
    ctx.hr.setFixture({ departments: [] });
    await expectRefused(/departments feed is empty/, ctx.sync);
  });

  it('refuses removing more than HR_MAX_REMOVAL_RATIO (default 0.5) of the known employees', async () => {
    ctx.hr.setFixture({ employees: SMALL_EMPLOYEES.slice(0, 1) }); // would remove 3 of 4
    await expectRefused(/remove 3 of 4 known employees.*HR_MAX_REMOVAL_RATIO \(0\.5\)/, ctx.sync);
  });

  it('allows removing exactly HR_MAX_REMOVAL_RATIO of the known employees', async () => {
    ctx.hr.setFixture({ employees: SMALL_EMPLOYEES.slice(0, 2) }); // removes 2 of 4 = 0.5
    const result = await syncOk();
    expect(result.changes.removed).toEqual([{ employeeNumber: 'E003' }, { employeeNumber: 'E004' }]);
  });

  it('honours a configured ratio (0 = no removal at all)', async () => {
    ctx.hr.setFixture({ employees: SMALL_EMPLOYEES.slice(0, 3) });
    await expectRefused(/remove 1 of 4/, ctx.fastSync({ maxRemovalRatio: 0 }));
  });

  it('refuses when the employees feed is decrypted with the wrong key', async () => {
    ctx.hr.setFault('employees', { kind: 'wrong-key' });
    await expectRefused(/employees feed: .*(wrong key|not UTF-8)/);
  });

  it('refuses when the departments feed is decrypted with the wrong key', async () => {
    ctx.hr.setFault('departments', { kind: 'wrong-key' });
    await expectRefused(/departments feed: .*(wrong key|not UTF-8)/);
  });

  it('refuses a payload that is not base64', async () => {
    ctx.hr.setFault('employees', { kind: 'garbage' });
    await expectRefused(/employees feed: the payload is not standard base64/);
  });

  it.each([
    ['not an array', { not: 'an array' }, /employees feed is not a JSON array/],
    ['a record without badge', [{ Name: 'x', DepID: '1' }], /employees\[0\]\.badge must be a string/],
    ['a non-numeric DepID', [{ badge: 'E001', Name: 'x', DepID: 'Sales' }], /DepID must be a numeric id/],
  ])('refuses a malformed employees payload: %s', async (_case, employees, pattern) => {
    ctx.hr.setFixture({ employees });
    await expectRefused(pattern);
  });

  it('refuses a malformed departments payload', async () => {
    ctx.hr.setFixture({ departments: [{ Id: '1', Name: 'No parent field' }] });
    await expectRefused(/departments\[0\]\.AdminId must be a numeric id/);
  });

  it('refuses when HR answers 5xx, after retrying', async () => {
    ctx.hr.setFault('employees', { kind: 'error', status: 503 });
    const requestsBefore = ctx.hr.requests().employees;
    await expectRefused(/employees feed could not be read: HTTP 503 \(3 attempts\)/);
    expect(ctx.hr.requests().employees - requestsBefore).toBe(3); // 1 + 2 retries (fastSync)
  });

  it('does not retry a 4xx answer', async () => {
    ctx.hr.setFault('departments', { kind: 'error', status: 404 });
    const requestsBefore = ctx.hr.requests().departments;
    await expectRefused(/departments feed could not be read: HTTP 404 \(1 attempt\)/);
    expect(ctx.hr.requests().departments - requestsBefore).toBe(1);
  });

  it('refuses when HR does not answer within the timeout', async () => {
    ctx.hr.setFault('employees', { kind: 'slow', delayMs: 5_000 });
    await expectRefused(/no answer within 200 ms/, ctx.fastSync({ timeoutMs: 200 }));
  });

  it('refuses when HR is unreachable (connection refused)', async () => {
    // A port nobody listens on: a simulator's, after it stopped.
    const { HrSimulator } = await import('../../src/modules/employees/hr-simulator.js');
    const gone = new HrSimulator({ employeesKey: 'k'.repeat(16), departmentsKey: 'k'.repeat(16) });
    const goneUrl = await gone.start(0);
    await gone.stop();
    const config = structuredClone(ctx.t.config);
    config.hr.employeesUrl = `${goneUrl}/hr/employees`;
    const { EmployeeSyncService } = await import('../../src/modules/employees/employee-sync.service.js');
    const { HrClient } = await import('../../src/modules/employees/hr-client.js');
    const client = new HrClient({ timeoutMs: 1000, retries: 1, retryBaseDelayMs: 5 }, logger);
    try {
      await expectRefused(/connection failed \(ECONNREFUSED\)/, new EmployeeSyncService(config, client));
    } finally {
      client.close();
    }
  });

  it('recovers from a transient failure by retrying', async () => {
    ctx.hr.setFault('employees', { kind: 'error', status: 500, times: 2 });
    ctx.hr.setFixture({ employees: [...SMALL_EMPLOYEES, emp('E005', 'Liu Yang', 1)] });
    const result = await ctx.fastSync().sync(ctx.t.app.services.orm, logger);
    expect(result.changes.added).toEqual(['E005']);
  });

  it('refuses to run when employee sync is disabled', async () => {
    const config = structuredClone(ctx.t.config);
    config.hr.enabled = false;
    const { EmployeeSyncService } = await import('../../src/modules/employees/employee-sync.service.js');
    const { HrClient } = await import('../../src/modules/employees/hr-client.js');
    const client = new HrClient({ timeoutMs: 1000 }, logger);
    try {
      await expectRefused(/disabled/, new EmployeeSyncService(config, client));
    } finally {
      client.close();
    }
  });
});

describe('isMirrorEmpty (the scheduler runs a sync at start when it is)', () => {
  it('is true before the first sync and false after', async () => {
    expect(await ctx.sync.isMirrorEmpty(ctx.em())).toBe(true);
    await syncOk();
    expect(await ctx.sync.isMirrorEmpty(ctx.em())).toBe(false);
  });
});

describe('the changes object', () => {
  it('is the same object in beforeCommit and afterCommit of one sync (listeners may key state on it)', async () => {
    const seen: unknown[] = [];
    const identity = {
      beforeCommit: async (_em: unknown, changes: unknown) => void seen.push(changes),
      afterCommit: async (_em: unknown, changes: unknown) => void seen.push(changes),
    };
    ctx.sync.addChangeListener(identity);
    try {
      await syncOk();
    } finally {
      ctx.sync.removeChangeListener(identity);
    }
    expect(seen).toHaveLength(2);
    expect(seen[0]).toBe(seen[1]);
  });
});
