import { Entity, Index, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';

/**
 * The HR mirror (SPEC §7, table and column names of the old system, §12): one row per employee with
 * the department path root → leaf joined by ','. Written only by employee sync (and the demo seed);
 * read through EmployeeDirectory.
 */
@Entity({ tableName: 'employee_department' })
// Declared so schema diffs know it; created by Migration20261123110000_employees (path-element lookups).
@Index({
  name: 'employee_department_path_gin',
  expression: `create index "employee_department_path_gin" on "employee_department" using gin ((string_to_array("dept_full_level_names", ',')))`,
})
export class EmployeeDepartment extends BaseEntity {
  @Unique({ name: 'employee_department_employee_number_key' })
  @Property({ type: 'text', fieldName: 'employee_number' })
  employeeNumber!: string;

  @Property({ type: 'text' })
  username!: string;

  /** Department path, root first, joined by ',' (the old system's format). */
  @Property({ type: 'text', fieldName: 'dept_full_level_names' })
  deptFullLevelNames!: string;

  /** The HR department id the employee belongs to (`DepID`); null for rows copied from the old system. */
  @Property({ type: 'text', fieldName: 'dep_id', nullable: true })
  depId?: string | null;
}

/** Separator of `dept_full_level_names`; department names never contain it (see hierarchy.ts). */
export const PATH_SEPARATOR = ',';

export function joinDepartmentPath(path: readonly string[]): string {
  return path.join(PATH_SEPARATOR);
}

export function splitDepartmentPath(stored: string | null | undefined): string[] {
  if (!stored) return [];
  return stored.split(PATH_SEPARATOR).filter((element) => element !== '');
}
