import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { EntityManager } from '../../src/db/orm.js';
import { DomainError, ErrorCode } from '../../src/errors.js';
import { EmployeeDirectory } from '../../src/modules/employees/employee-directory.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * The directory other modules call (SPEC §6): employee keys with sync on and off, departments as
 * exact path elements, employees under a department, listing.
 */

let t: TestApp;
let syncOn: EmployeeDirectory;
let syncOff: EmployeeDirectory;
let em: EntityManager;

beforeAll(async () => {
  t = await startTestApp({ label: 'employee_directory' });
  em = t.app.services.orm.em.fork();
  const on = loadConfig({ HR_SYNC_ENABLED: 'true' });
  const off = loadConfig({ HR_SYNC_ENABLED: 'false' });
  syncOn = new EmployeeDirectory(on, t.app.services.directory);
  syncOff = new EmployeeDirectory(off, t.app.services.directory);
  await em.execute(`
    insert into auth_users (id, name, employee_number) values
      ('u-mirrored', 'Li Lei', '000001'),
      ('u-not-mirrored', 'Ghost', '000777'),
      ('u-no-number', 'Outsider', null)`);
  await em.execute(`
    insert into employee_department (employee_number, username, dept_full_level_names, dep_id) values
      ('000001', 'Li Lei', 'Corp,R&D,Platform', '3'),
      ('000002', 'Han Meimei', 'Corp,Sales', '4'),
      ('000003', 'Zhang Wei', 'Corp,R&D', '2'),
      ('000004', 'Wang Fang', 'Corp,R&D,Platform Tools', '6'),
      ('000005', 'Li Ming', 'Other Corp', '9')`);
});

afterAll(async () => {
  await t?.stop();
});

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(DomainError);
  return error as DomainError;
}

describe('syncEnabled', () => {
  it('follows HR_SYNC_ENABLED', () => {
    expect(syncOn.syncEnabled).toBe(true);
    expect(syncOff.syncEnabled).toBe(false);
    expect(t.app.services.employees.syncEnabled).toBe(false);
  });
});

describe('resolveEmployeeKey with sync enabled: the employee number', () => {
  it('resolves {userId} through auth_users.employee_number', async () => {
    expect(await syncOn.resolveEmployeeKey(em, { userId: 'u-mirrored' })).toBe('000001');
  });

  it('resolves {employeeNumber} directly when the employee is in the mirror', async () => {
    expect(await syncOn.resolveEmployeeKey(em, { employeeNumber: '000002' })).toBe('000002');
    expect(await syncOn.resolveEmployeeKey(em, { employeeNumber: '000002', userId: null })).toBe('000002');
  });

  it.each([
    [{ userId: 'nobody' }, /"nobody" is not in the user directory/],
    [{ userId: 'u-no-number' }, /"u-no-number" has no employee number/],
    [{ userId: 'u-not-mirrored' }, /"000777", which is not in the HR mirror/],
    [{ employeeNumber: '999999' }, /"999999" is not in the HR mirror/],
  ])('answers USER_NOT_FOUND naming the identifier for %j', async (ref, message) => {
    const error = await refusal(syncOn.resolveEmployeeKey(em, ref));
    expect(error.code).toBe(ErrorCode.USER_NOT_FOUND);
    expect(error.message).toMatch(message);
  });
});

describe('resolveEmployeeKey with sync disabled: the user id', () => {
  it('resolves {userId} to itself when the user exists', async () => {
    expect(await syncOff.resolveEmployeeKey(em, { userId: 'u-no-number' })).toBe('u-no-number');
    expect(await syncOff.resolveEmployeeKey(em, { userId: 'u-not-mirrored' })).toBe('u-not-mirrored');
  });

  it('resolves {employeeNumber} to the user with that number (mirror or not)', async () => {
    expect(await syncOff.resolveEmployeeKey(em, { employeeNumber: '000777' })).toBe('u-not-mirrored');
    expect(await syncOff.resolveEmployeeKey(em, { employeeNumber: '000001' })).toBe('u-mirrored');
  });

  it.each([
    [{ userId: 'nobody' }, /"nobody" is not in the user directory/],
    [{ employeeNumber: '000002' }, /No user .* employee number "000002"/],
  ])('answers USER_NOT_FOUND naming the identifier for %j', async (ref, message) => {
    const error = await refusal(syncOff.resolveEmployeeKey(em, ref));
    expect(error.code).toBe(ErrorCode.USER_NOT_FOUND);
    expect(error.message).toMatch(message);
  });
});

describe('resolveEmployeeKey: exactly one identifier', () => {
  it.each([
    [{}],
    [{ userId: null, employeeNumber: null }],
    [{ userId: 'u-mirrored', employeeNumber: '000001' }],
    [{ userId: '' }],
    [{ employeeNumber: '   ' }],
    [{ userId: 'x'.repeat(201) }],
  ])('refuses %j with BAD_USER_INPUT', async (ref) => {
    for (const directory of [syncOn, syncOff]) {
      expect((await refusal(directory.resolveEmployeeKey(em, ref))).code).toBe(ErrorCode.BAD_USER_INPUT);
    }
  });
});

describe('starPushKey', () => {
  it('is the employee number when sync is on and the user has a record, else the user id', async () => {
    expect(await syncOn.starPushKey(em, 'u-mirrored')).toBe('000001');
    expect(await syncOn.starPushKey(em, 'u-not-mirrored')).toBe('u-not-mirrored');
    expect(await syncOn.starPushKey(em, 'u-no-number')).toBe('u-no-number');
    expect(await syncOn.starPushKey(em, 'not-in-directory')).toBe('not-in-directory');
    expect(await syncOff.starPushKey(em, 'u-mirrored')).toBe('u-mirrored');
  });
});

describe('departments', () => {
  it('exist as exact path elements, not substrings (SPEC §6 Decision)', async () => {
    expect(await syncOn.departmentExists(em, 'R&D')).toBe(true);
    expect(await syncOn.departmentExists(em, 'Corp')).toBe(true);
    expect(await syncOn.departmentExists(em, 'Platform')).toBe(true);
    expect(await syncOn.departmentExists(em, 'Plat')).toBe(false);
    expect(await syncOn.departmentExists(em, 'corp')).toBe(false);
    expect(await syncOn.departmentExists(em, 'Corp,R&D')).toBe(false);
    expect(await syncOn.departmentExists(em, '')).toBe(false);
  });

  it('list every element once, sorted', async () => {
    expect(await syncOn.departments(em)).toEqual(['Corp', 'Other Corp', 'Platform', 'Platform Tools', 'R&D', 'Sales']);
  });

  it('employeesUnder includes sub-departments and matches whole elements only', async () => {
    const numbers = async (name: string) =>
      (await syncOn.employeesUnder(em, name)).map((employee) => employee.employeeNumber);
    expect(await numbers('R&D')).toEqual(['000001', '000003', '000004']);
    expect(await numbers('Platform')).toEqual(['000001']);
    expect(await numbers('Corp')).toEqual(['000001', '000002', '000003', '000004']);
    expect(await numbers('Nope')).toEqual([]);
  });

  it('pathToDepartment is the path from the root down to the department, whole elements only', async () => {
    expect(await syncOn.pathToDepartment(em, 'R&D')).toEqual(['Corp', 'R&D']);
    expect(await syncOn.pathToDepartment(em, 'Platform')).toEqual(['Corp', 'R&D', 'Platform']);
    expect(await syncOn.pathToDepartment(em, 'Corp')).toEqual(['Corp']);
    expect(await syncOn.pathToDepartment(em, 'Plat')).toBeNull();
    expect(await syncOn.pathToDepartment(em, '')).toBeNull();
  });

  it('are looked up through the GIN index on the path array', async () => {
    const plan = await em.transactional(async (tx) => {
      await tx.execute('set local enable_seqscan = off');
      return tx.execute<Record<string, string>[]>(
        `explain select employee_number from employee_department where string_to_array(dept_full_level_names, ',') @> array['R&D']::text[]`,
      );
    });
    expect(plan.map((row) => Object.values(row)[0]).join('\n')).toContain('employee_department_path_gin');
  });
});

describe('find / findMany', () => {
  it('returns the record with its path root first', async () => {
    const record = await syncOn.find(em, '000001');
    expect(record).toMatchObject({
      employeeNumber: '000001',
      username: 'Li Lei',
      departmentPath: ['Corp', 'R&D', 'Platform'],
    });
    expect(record?.updatedAt).toBeInstanceOf(Date);
    expect(await syncOn.find(em, 'missing')).toBeNull();
  });

  it('findMany returns those that exist, once each, ordered', async () => {
    const found = await syncOn.findMany(em, ['000003', 'missing', '000001', '000003', "x'); drop table x; --"]);
    expect(found.map((record) => record.employeeNumber)).toEqual(['000001', '000003']);
    expect(await syncOn.findMany(em, [])).toEqual([]);
  });
});

describe('list', () => {
  const numbers = async (filter: { departmentName?: string | null; search?: string | null }, page = {}) =>
    (await syncOn.list(em, filter, page)).nodes.map((employee) => employee.employeeNumber);

  it('filters by department element and by case-insensitive substring of name or number', async () => {
    expect(await numbers({ departmentName: 'R&D' })).toEqual(['000001', '000003', '000004']);
    expect(await numbers({ search: 'li' })).toEqual(['000001', '000005']);
    expect(await numbers({ search: 'LI LEI' })).toEqual(['000001']);
    expect(await numbers({ search: '0003' })).toEqual(['000003']);
    expect(await numbers({ search: '%' })).toEqual([]);
    expect(await numbers({ search: '_' })).toEqual([]);
    expect(await numbers({ departmentName: 'R&D', search: 'wang' })).toEqual(['000004']);
    expect(await numbers({ departmentName: '', search: '' })).toHaveLength(5);
  });

  it('pages with the shared helper', async () => {
    const page = await syncOn.list(em, {}, { first: 2, offset: 1 });
    expect(page.nodes.map((employee) => employee.employeeNumber)).toEqual(['000002', '000003']);
    expect(page.totalCount).toBe(5);
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const next = await syncOn.list(em, {}, { first: 2, after: page.pageInfo.endCursor });
    expect(next.nodes.map((employee) => employee.employeeNumber)).toEqual(['000004', '000005']);
    expect(next.pageInfo.hasNextPage).toBe(false);
  });

  it('refuses over-long filters', async () => {
    expect((await refusal(syncOn.list(em, { search: 'x'.repeat(201) }, {}))).code).toBe(ErrorCode.BAD_USER_INPUT);
    expect((await refusal(syncOn.list(em, { departmentName: 'x'.repeat(201) }, {}))).code).toBe(
      ErrorCode.BAD_USER_INPUT,
    );
  });
});

describe('storage', () => {
  it('the entity matches the migration (a schema diff finds nothing to change in employee_department)', async () => {
    const sql = await t.app.services.orm.schema.getUpdateSchemaSQL({ wrap: false });
    expect(sql.split('\n').filter((line) => line.includes('employee_department'))).toEqual([]);
  });

  it('refuses a second row for one employee number (unique)', async () => {
    await expect(
      em.execute(
        `insert into employee_department (employee_number, username, dept_full_level_names) values ('000001', 'Dup', 'X')`,
      ),
    ).rejects.toThrow(/unique|duplicate/i);
  });
});
