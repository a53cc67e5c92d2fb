import type { EntityManager } from '../../db/orm.js';

/**
 * What one employee sync changed in the HR mirror, by employee number. An employee can be both
 * `moved` and `renamed`; `added` and `removed` are exclusive with the others.
 */
export interface EmployeeChanges {
  added: string[];
  /** The department path changed. */
  moved: string[];
  /** The username changed. */
  renamed: string[];
  removed: { employeeNumber: string }[];
}

/**
 * The permissions module's hook into employee sync (SPEC §7), injected into EmployeeSyncService so
 * the employees module does not depend on permissions. One sync passes the very same `changes`
 * object to both hooks (a listener may key state on it).
 *
 * - `beforeCommit` runs inside the sync's one transaction, after the mirror rows are written, and
 *   only when the sync changed something: delete the personal model whitelists of moved employees
 *   and the settings and effective records of removed ones there (and record what is owed for them),
 *   and recompute the added, moved and renamed ones, so the mirror and the permissions commit (or
 *   roll back) together. Throwing aborts the whole sync (HR_SYNC_FAILED, nothing changed).
 * - `afterCommit` runs after every committed sync — also one that changed nothing (all lists
 *   empty), so work an earlier sync left owed is retried — on a fresh EntityManager: push to the
 *   gateway. A failure there is logged; the mirror stays synced. A refused or failed sync calls
 *   neither.
 */
export interface EmployeeChangeListener {
  beforeCommit(em: EntityManager, changes: EmployeeChanges): Promise<void>;
  afterCommit(em: EntityManager, changes: EmployeeChanges): Promise<void>;
}

export function hasChanges(changes: EmployeeChanges): boolean {
  return changes.added.length + changes.moved.length + changes.renamed.length + changes.removed.length > 0;
}
