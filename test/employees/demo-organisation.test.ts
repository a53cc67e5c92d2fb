import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoOrganisation } from '../../src/modules/employees/demo-organisation.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { mirror } from './hr-support.js';

/** `npm run seed` writes the HR simulator's organisation straight into the mirror. */

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ label: 'demo_organisation' });
});

afterAll(async () => {
  await t?.stop();
});

describe('seedDemoOrganisation', () => {
  it('inserts the 400 demo employees with their department paths', async () => {
    const em = t.app.services.orm.em.fork();
    expect(await seedDemoOrganisation(em)).toBe(400);
    const rows = await mirror(em);
    expect(Object.keys(rows)).toHaveLength(400);
    expect(rows['000002']?.username).toBe('Li Lei');
    expect(rows['000001']?.path.split(',')[0]).toBe('Acme Group');
    expect(await t.app.services.employees.departments(em)).toHaveLength(65);
  });

  it('is safe to run again: nothing changes, other employees are left alone', async () => {
    const em = t.app.services.orm.em.fork();
    await em.execute(
      `insert into employee_department (employee_number, username, dept_full_level_names) values ('X-1', 'Extra', 'Elsewhere')`,
    );
    const before = await em.execute('select * from employee_department order by employee_number');
    expect(await seedDemoOrganisation(em)).toBe(400);
    expect(await em.execute('select * from employee_department order by employee_number')).toEqual(before);
  });

  it('lets the demo directory users resolve to their employee records', async () => {
    const em = t.app.services.orm.em.fork();
    const record = await t.app.services.employees.find(em, '000016');
    expect(record?.departmentPath.length).toBeGreaterThanOrEqual(2);
  });
});
