import { PATH_SEPARATOR } from './employee-department.entity.js';
import type { HrDepartment } from './hr-payload.js';

/**
 * Department paths from the HR feed (SPEC §7): each department's path follows `AdminId` up to the
 * root (AdminId 0). The feed is not trusted to be a tree: a cycle or a parent that is not in the
 * feed ends the walk where it is (the path then starts at the last department reached), and is
 * reported so the caller can log it. A walk never visits a department twice, so it always ends.
 */

export const ROOT_PARENT_ID = '0';

export interface HierarchyProblem {
  kind: 'cycle' | 'unknown-parent';
  /** The department whose walk ended early. */
  departmentId: string;
  /** The parent id that was unknown, or that closed the cycle. */
  parentId: string;
}

export interface DepartmentHierarchy {
  /** Department id → path of names, root first, the department itself last. */
  paths: Map<string, string[]>;
  problems: HierarchyProblem[];
  /** Names that contained the path separator, which was replaced (a name must be one path element). */
  renamed: { departmentId: string; name: string }[];
}

/** A full-width comma keeps the name readable while keeping it one element of the stored path. */
const SEPARATOR_REPLACEMENT = '，';

export function buildDepartmentHierarchy(departments: readonly HrDepartment[]): DepartmentHierarchy {
  const byId = new Map<string, HrDepartment>();
  const names = new Map<string, string>();
  const renamed: DepartmentHierarchy['renamed'] = [];
  for (const department of departments) {
    byId.set(department.id, department);
    const safe = department.name.split(PATH_SEPARATOR).join(SEPARATOR_REPLACEMENT);
    if (safe !== department.name) renamed.push({ departmentId: department.id, name: safe });
    names.set(department.id, safe);
  }

  const paths = new Map<string, string[]>();
  const problems: HierarchyProblem[] = [];
  for (const department of departments) {
    // Collected leaf → root, reversed once at the end.
    const path = [names.get(department.id) as string];
    const visited = new Set([department.id]);
    let current = department;
    while (current.parentId !== ROOT_PARENT_ID) {
      const parent = byId.get(current.parentId);
      if (!parent) {
        problems.push({ kind: 'unknown-parent', departmentId: department.id, parentId: current.parentId });
        break;
      }
      if (visited.has(parent.id)) {
        problems.push({ kind: 'cycle', departmentId: department.id, parentId: parent.id });
        break;
      }
      visited.add(parent.id);
      path.push(names.get(parent.id) as string);
      current = parent;
    }
    paths.set(department.id, path.reverse());
  }
  return { paths, problems, renamed };
}
