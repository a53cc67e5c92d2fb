import type { Cents } from '../../../money.js';
import { hasStarred } from '../../users/starred-projects.js';
import type { ConditionAst, ConditionNode } from './ast.js';

/** The user attributes a condition reads (a subset of `auth_users`; an AuthUser fits). */
export interface ConditionUser {
  id: string;
  createdAt?: Date | null;
  accessTime?: Date | null;
  vip?: number | null;
  githubStar?: string | null;
  company?: string | null;
  employeeNumber?: string | null;
}

export interface ConditionContext {
  /**
   * The user's department path, root first, when employee sync is enabled and the user has an
   * employee record (the elements of `dept_full_level_names` split on `,`; `[]` for an empty path).
   * null otherwise: `belong-to` then compares the user's `company`.
   */
  departmentPathOf(user: ConditionUser): string[] | null | Promise<string[] | null>;
  /** Remaining quota (gateway total − used) in cents; may throw (e.g. the gateway is down). */
  remainingQuota(userId: string): Promise<Cents>;
}

/** A per-user result: a failure means "skip this user in this run and count it as failed". */
export type ConditionOutcome = { ok: true; matches: boolean } | { ok: false; error: unknown };

/** true / false, or undefined while the remaining quota is not known ("needs the gateway"). */
type Truth = boolean | undefined;

/**
 * One user's evaluation. The first pass runs without the gateway, in three-valued (Kleene) logic,
 * exactly as the SQL translation does: `quota-le` is "unknown", `and` with a false operand is false,
 * `or` with a true one is true. Only when that leaves the answer open is the remaining quota fetched
 * (once, whatever the number of `quota-le` calls) and the expression decided.
 */
class UserEvaluation {
  remaining: Cents | undefined;
  private departmentPath: Promise<string[] | null> | undefined;

  constructor(
    private readonly user: ConditionUser,
    private readonly context: ConditionContext,
  ) {}

  private pathOnce(): Promise<string[] | null> {
    this.departmentPath ??= Promise.resolve(this.context.departmentPathOf(this.user));
    return this.departmentPath;
  }

  async truth(node: ConditionNode): Promise<Truth> {
    const user = this.user;
    switch (node.kind) {
      case 'constant':
        return node.value;
      case 'match-user':
        return node.userIds.some((id) => id.value === user.id);
      case 'register-before':
        return user.createdAt != null && user.createdAt.getTime() <= node.timestamp.instant.getTime();
      case 'access-after':
        return user.accessTime != null && user.accessTime.getTime() > node.timestamp.instant.getTime();
      case 'github-star':
        return hasStarred(user.githubStar, node.project.value);
      case 'is-vip':
        return user.vip != null && user.vip >= node.level.value;
      case 'belong-to': {
        const path = await this.pathOnce();
        const names = node.organizations.map((organization) => organization.value);
        if (path !== null) return names.some((name) => path.includes(name));
        return user.company != null && names.includes(user.company);
      }
      case 'quota-le':
        return this.remaining === undefined ? undefined : this.remaining <= node.amount.cents;
      case 'and':
      case 'or': {
        // `and` stops at the first false, `or` at the first true.
        const decisive = node.kind === 'or';
        let open = false;
        for (const operand of node.operands) {
          const truth = await this.truth(operand);
          if (truth === decisive) return decisive;
          if (truth === undefined) open = true;
        }
        return open ? undefined : !decisive;
      }
      case 'not': {
        const truth = await this.truth(node.operand);
        return truth === undefined ? undefined : !truth;
      }
    }
  }
}

/**
 * Decides a condition for one user. Never throws: an error (the gateway is down for `quota-le`, the
 * department look-up failed) comes back as `{ ok: false, error }`, for the caller to count and skip.
 */
export async function evaluateCondition(
  ast: ConditionAst,
  user: ConditionUser,
  context: ConditionContext,
): Promise<ConditionOutcome> {
  try {
    const evaluation = new UserEvaluation(user, context);
    let truth = await evaluation.truth(ast);
    if (truth === undefined) {
      evaluation.remaining = await context.remainingQuota(user.id);
      truth = await evaluation.truth(ast);
    }
    return { ok: true, matches: truth === true };
  } catch (error) {
    return { ok: false, error };
  }
}
