import { describe, expect, it } from 'vitest';
import { buildDepartmentHierarchy } from '../../src/modules/employees/department-hierarchy.js';
import type { HrDepartment } from '../../src/modules/employees/hr-payload.js';

const dept = (id: number, parentId: number, name: string): HrDepartment => ({
  id: String(id),
  parentId: String(parentId),
  name,
});

describe('department paths (AdminId up to the root)', () => {
  // Listed children first, so the builder cannot rely on the order of the feed.
  const chain = [
    dept(5, 4, 'L5'),
    dept(4, 3, 'L4'),
    dept(3, 2, 'L3'),
    dept(2, 1, 'L2'),
    dept(1, 0, 'L1'),
    dept(6, 1, 'Sibling'),
    dept(7, 0, 'Second root'),
  ];

  it.each([
    ['1', ['L1']],
    ['2', ['L1', 'L2']],
    ['3', ['L1', 'L2', 'L3']],
    ['4', ['L1', 'L2', 'L3', 'L4']],
    ['5', ['L1', 'L2', 'L3', 'L4', 'L5']],
    ['6', ['L1', 'Sibling']],
    ['7', ['Second root']],
  ])('department %s has path %j (root first)', (id, path) => {
    const hierarchy = buildDepartmentHierarchy(chain);
    expect(hierarchy.paths.get(id)).toEqual(path);
    expect(hierarchy.problems).toEqual([]);
  });

  it('ends a cycle (and reports it) instead of walking forever', () => {
    const hierarchy = buildDepartmentHierarchy([dept(1, 3, 'A'), dept(2, 1, 'B'), dept(3, 2, 'C'), dept(4, 3, 'D')]);
    expect(hierarchy.paths.get('1')).toEqual(['B', 'C', 'A']);
    expect(hierarchy.paths.get('4')).toEqual(['A', 'B', 'C', 'D']);
    expect(hierarchy.problems.map((problem) => problem.kind)).toEqual(['cycle', 'cycle', 'cycle', 'cycle']);
    expect(hierarchy.problems[0]).toEqual({ kind: 'cycle', departmentId: '1', parentId: '1' });
  });

  it('ends a department that is its own parent', () => {
    const hierarchy = buildDepartmentHierarchy([dept(1, 1, 'Self')]);
    expect(hierarchy.paths.get('1')).toEqual(['Self']);
    expect(hierarchy.problems).toEqual([{ kind: 'cycle', departmentId: '1', parentId: '1' }]);
  });

  it('ends at an unknown parent (orphan), keeping the part it knows, and reports it', () => {
    const hierarchy = buildDepartmentHierarchy([dept(2, 99, 'Orphan'), dept(3, 2, 'Child of orphan')]);
    expect(hierarchy.paths.get('2')).toEqual(['Orphan']);
    expect(hierarchy.paths.get('3')).toEqual(['Orphan', 'Child of orphan']);
    expect(hierarchy.problems).toEqual([
      { kind: 'unknown-parent', departmentId: '2', parentId: '99' },
      { kind: 'unknown-parent', departmentId: '3', parentId: '99' },
    ]);
  });

  it('keeps a name with "," one path element (full-width comma) and reports it', () => {
    const hierarchy = buildDepartmentHierarchy([dept(1, 0, 'Sales, East'), dept(2, 1, 'Team')]);
    expect(hierarchy.paths.get('2')).toEqual(['Sales， East', 'Team']);
    expect(hierarchy.renamed).toEqual([{ departmentId: '1', name: 'Sales， East' }]);
  });

  it('stays fast on a deep chain (no walk is quadratic per step)', () => {
    const deep = Array.from({ length: 2000 }, (_, index) => dept(index + 1, index, `D${index + 1}`));
    const hierarchy = buildDepartmentHierarchy(deep);
    expect(hierarchy.paths.get('2000')).toHaveLength(2000);
  });
});
