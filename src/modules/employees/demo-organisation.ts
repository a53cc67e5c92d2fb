import type { EntityManager } from '../../db/orm.js';
import { buildDepartmentHierarchy } from './department-hierarchy.js';
import { joinDepartmentPath } from './employee-department.entity.js';
import { generateHrFixture } from './hr-fixture.js';
import { parseDepartments } from './hr-payload.js';

/**
 * `npm run seed`: the HR simulator's demo organisation written straight into the mirror, so that
 * permissions can be explored without running HR sync. An upsert: re-seeding is harmless, and
 * employees that are not in the demo organisation are left alone.
 */
export async function seedDemoOrganisation(em: EntityManager): Promise<number> {
  const fixture = generateHrFixture();
  const { paths } = buildDepartmentHierarchy(parseDepartments(JSON.stringify(fixture.departments)));
  const rows = fixture.employees.map((employee) => ({
    employee_number: employee.badge,
    username: employee.Name,
    path: joinDepartmentPath(paths.get(employee.DepID) ?? []),
    dep_id: employee.DepID,
  }));
  await em.execute(
    `insert into employee_department (employee_number, username, dept_full_level_names, dep_id)
     select x.employee_number, x.username, x.path, x.dep_id
     from jsonb_to_recordset(?::jsonb) as x(employee_number text, username text, path text, dep_id text)
     on conflict (employee_number) do update set username = excluded.username,
       dept_full_level_names = excluded.dept_full_level_names, dep_id = excluded.dep_id, update_time = now()
     where (employee_department.username, employee_department.dept_full_level_names, employee_department.dep_id)
       is distinct from (excluded.username, excluded.dept_full_level_names, excluded.dep_id)`,
    [JSON.stringify(rows)],
  );
  return rows.length;
}
