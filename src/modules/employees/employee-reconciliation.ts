import type { EmployeeChanges } from './employee-change-listener.js';

/**
 * The pure part of employee sync (SPEC §7): given the mirror and the feed, what to insert, update
 * and delete, and which employees changed how. No I/O, so every rule is easy to test.
 */

/** A mirror row, as read inside the sync transaction. */
export interface MirrorEmployee {
  employeeNumber: string;
  username: string;
  /** dept_full_level_names as stored. */
  path: string;
  depId: string | null;
}

/** A feed record: applied, or skipped (unknown department) — a skipped employee is still in the feed, so kept. */
export type FeedEmployee =
  | { employeeNumber: string; skipped: false; username: string; path: string; depId: string | null }
  | { employeeNumber: string; skipped: true };

export interface EmployeeRow {
  employee_number: string;
  username: string;
  path: string;
  dep_id: string | null;
}

export interface ReconciliationPlan {
  inserts: EmployeeRow[];
  updates: EmployeeRow[];
  changes: EmployeeChanges;
  unchanged: number;
}

export function planReconciliation(
  mirror: readonly MirrorEmployee[],
  feed: readonly FeedEmployee[],
): ReconciliationPlan {
  const known = new Map(mirror.map((employee) => [employee.employeeNumber, employee]));
  const inFeed = new Set<string>();
  const plan: ReconciliationPlan = {
    inserts: [],
    updates: [],
    changes: { added: [], moved: [], renamed: [], removed: [] },
    unchanged: 0,
  };

  for (const employee of feed) {
    inFeed.add(employee.employeeNumber);
    if (employee.skipped) continue;
    const row: EmployeeRow = {
      employee_number: employee.employeeNumber,
      username: employee.username,
      path: employee.path,
      dep_id: employee.depId,
    };
    const before = known.get(employee.employeeNumber);
    if (!before) {
      plan.inserts.push(row);
      plan.changes.added.push(employee.employeeNumber);
      continue;
    }
    const moved = before.path !== employee.path;
    const renamed = before.username !== employee.username;
    if (moved) plan.changes.moved.push(employee.employeeNumber);
    if (renamed) plan.changes.renamed.push(employee.employeeNumber);
    // A new department id with the same path is not a move, but the row should still say where HR puts them.
    if (moved || renamed || before.depId !== employee.depId) plan.updates.push(row);
    else plan.unchanged++;
  }

  for (const employee of mirror) {
    if (!inFeed.has(employee.employeeNumber)) plan.changes.removed.push({ employeeNumber: employee.employeeNumber });
  }
  return plan;
}
