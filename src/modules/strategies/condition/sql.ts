import { STAR_ITEM_WHITESPACE } from '../../users/starred-projects.js';
import type { ConditionAst, ConditionNode } from './ast.js';

/**
 * SQL translation of a condition (SPEC §3, "scans must be fast"): a three-valued partial evaluation
 * over `auth_users u` (and, for `belong-to` with employee sync, `employee_department e` left-joined
 * on the employee number). What SQL cannot decide — `quota-le` always, `belong-to` when the directory
 * is in another database — is "unknown", and two predicates come out:
 *
 * - `definitelyTrue`: the condition holds whatever the unknowns turn out to be;
 * - `possiblyTrue`: the condition may hold; users here but not in `definitelyTrue` need
 *   `evaluateCondition` (and the gateway). Without unknowns the two are the same predicate.
 *
 * Unknowns follow Kleene logic, exactly like the evaluator's first pass, so the users left for the
 * evaluator are exactly those it would ask the gateway about. Every leaf is NULL-free (coalesce),
 * so `not` agrees with the evaluator on missing attributes. Timestamps compare at millisecond
 * precision, as the user's `Date` fields do in the evaluator (the driver truncates microseconds).
 *
 * Values are never written into the SQL: each is a `?` placeholder with its value in `params`, in
 * order — the convention of `em.execute(sql, params)`; `toNumberedPlaceholders` gives `$1, $2, …`.
 */
export type SqlParam = string | number;

export interface SqlFragment {
  sql: string;
  params: SqlParam[];
}

export interface ConditionSqlOptions {
  /** Employee sync on: `belong-to` looks at department paths of users with an employee record. */
  syncEnabled: boolean;
  /**
   * Whether `employee_department` can be joined with `auth_users` (default true). False when the
   * directory lives in another database (UserDirectory.sharesMainDatabase false): with sync on,
   * `belong-to` is then left to the evaluator.
   */
  departmentsInSql?: boolean;
}

export interface ConditionSql {
  definitelyTrue: SqlFragment;
  possiblyTrue: SqlFragment;
  /** The predicates read `e.*`: select from `conditionFromClause(…)`, which joins employee_department. */
  needsEmployeeJoin: boolean;
  /** false when the two predicates are the same: SQL decides every user on its own. */
  needsEvaluation: boolean;
}

/** The users table and its join, as the predicates expect them (`u`, `e`). */
export function conditionFromClause(needsEmployeeJoin: boolean): string {
  return needsEmployeeJoin
    ? 'auth_users u left join employee_department e on e.employee_number = u.employee_number'
    : 'auth_users u';
}

/**
 * The users the condition may match: columns `id` (text) and `definitely_true` (false: decide with
 * evaluateCondition). Use it as a subquery to add the caller's own filters and order.
 */
export function candidateUsersQuery(condition: ConditionSql): SqlFragment {
  return {
    sql:
      `select u.id::text as id, ${condition.definitelyTrue.sql} as definitely_true ` +
      `from ${conditionFromClause(condition.needsEmployeeJoin)} where ${condition.possiblyTrue.sql}`,
    params: [...condition.definitelyTrue.params, ...condition.possiblyTrue.params],
  };
}

/** Rewrites the `?` placeholders of a fragment to `$first`, `$first+1`, … (for the pg driver). */
export function toNumberedPlaceholders(sql: string, first = 1): string {
  let next = first;
  return sql.replace(/\?/g, () => `$${next++}`);
}

/** A predicate that never yields NULL, or a constant. */
type Predicate = boolean | { sql: string; params: SqlParam[]; usesEmployee: boolean };

/** `definitely` and `possibly` are the same object when nothing under the node is unknown. */
interface Translation {
  definitely: Predicate;
  possibly: Predicate;
}

const UNKNOWN: Translation = { definitely: false, possibly: true };

const known = (predicate: Predicate): Translation => ({ definitely: predicate, possibly: predicate });

/** The characters trimmed around github_star items, as a SQL expression (the same set as the evaluator). */
const STAR_TRIM_SQL = [...STAR_ITEM_WHITESPACE].map((char) => `chr(${char.charCodeAt(0)})`).join(' || ');

const placeholders = (count: number) => Array.from({ length: count }, () => '?').join(', ');

/** The instant one millisecond later, as a timestamptz literal PostgreSQL reads for any year up to 9999. */
function millisecondAfter(instant: Date): string {
  const next = new Date(instant.getTime() + 1);
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return (
    `${pad(next.getUTCFullYear(), 4)}-${pad(next.getUTCMonth() + 1)}-${pad(next.getUTCDate())} ` +
    `${pad(next.getUTCHours())}:${pad(next.getUTCMinutes())}:${pad(next.getUTCSeconds())}.` +
    `${pad(next.getUTCMilliseconds(), 3)}+00`
  );
}

function leaf(sql: string, params: SqlParam[], usesEmployee = false): Translation {
  return known({ sql, params, usesEmployee });
}

function combine(kind: 'and' | 'or', predicates: Predicate[]): Predicate {
  const absorbing = kind === 'or'; // true absorbs an `or`, false an `and`
  const parts: Exclude<Predicate, boolean>[] = [];
  for (const predicate of predicates) {
    if (predicate === absorbing) return absorbing;
    if (predicate !== !absorbing) parts.push(predicate as Exclude<Predicate, boolean>);
  }
  if (parts.length === 0) return !absorbing;
  if (parts.length === 1) return parts[0]!;
  return {
    sql: `(${parts.map((part) => part.sql).join(` ${kind} `)})`,
    params: parts.flatMap((part) => part.params),
    usesEmployee: parts.some((part) => part.usesEmployee),
  };
}

function negate(predicate: Predicate): Predicate {
  if (typeof predicate === 'boolean') return !predicate;
  return { ...predicate, sql: `(not ${predicate.sql})` };
}

function translate(node: ConditionNode, options: Required<ConditionSqlOptions>): Translation {
  switch (node.kind) {
    case 'constant':
      return known(node.value);
    case 'match-user':
      // id is the primary key, never NULL; ::text because an adopted directory may keep it as uuid.
      return leaf(
        `(u.id::text in (${placeholders(node.userIds.length)}))`,
        node.userIds.map((id) => id.value),
      );
    case 'register-before':
      // created_at <= ts at millisecond precision  ⟺  created_at < ts + 1 ms
      return leaf('coalesce(u.created_at < ?::timestamptz, false)', [millisecondAfter(node.timestamp.instant)]);
    case 'access-after':
      // access_time > ts at millisecond precision  ⟺  access_time >= ts + 1 ms
      return leaf('coalesce(u.access_time >= ?::timestamptz, false)', [millisecondAfter(node.timestamp.instant)]);
    case 'github-star':
      return leaf(
        `(exists (select 1 from unnest(string_to_array(u.github_star, ',')) as qm_star(item) where btrim(qm_star.item, ${STAR_TRIM_SQL}) = ?))`,
        [node.project.value],
      );
    case 'is-vip':
      return leaf('coalesce(u.vip >= ?, false)', [node.level.value]);
    case 'belong-to':
      return belongTo(
        node.organizations.map((organization) => organization.value),
        options,
      );
    case 'quota-le':
      return UNKNOWN;
    case 'and':
    case 'or': {
      const parts = node.operands.map((operand) => translate(operand, options));
      const definitely = combine(
        node.kind,
        parts.map((part) => part.definitely),
      );
      if (parts.every((part) => part.definitely === part.possibly)) return known(definitely);
      return {
        definitely,
        possibly: combine(
          node.kind,
          parts.map((part) => part.possibly),
        ),
      };
    }
    case 'not': {
      const inner = translate(node.operand, options);
      if (inner.definitely === inner.possibly) return known(negate(inner.definitely));
      // not(x) is surely true where x is surely not possible, and possible where x is not sure.
      return { definitely: negate(inner.possibly), possibly: negate(inner.definitely) };
    }
  }
}

function belongTo(names: string[], options: Required<ConditionSqlOptions>): Translation {
  const company = `coalesce(u.company in (${placeholders(names.length)}), false)`;
  if (!options.syncEnabled) return leaf(company, names);
  if (!options.departmentsInSql) return UNKNOWN;
  // With an employee record: any element of the path; without one: the company.
  return leaf(
    `(case when e.employee_number is not null then coalesce(string_to_array(e.dept_full_level_names, ',') && array[${placeholders(names.length)}]::text[], false) else ${company} end)`,
    [...names, ...names],
    true,
  );
}

function fragment(predicate: Predicate): SqlFragment {
  if (typeof predicate === 'boolean') return { sql: predicate ? 'true' : 'false', params: [] };
  return { sql: predicate.sql, params: [...predicate.params] };
}

const usesEmployee = (predicate: Predicate) => typeof predicate !== 'boolean' && predicate.usesEmployee;

export function conditionToSql(ast: ConditionAst, options: ConditionSqlOptions): ConditionSql {
  const translation = translate(ast, { departmentsInSql: true, ...options });
  return {
    definitelyTrue: fragment(translation.definitely),
    possiblyTrue: fragment(translation.possibly),
    needsEmployeeJoin: usesEmployee(translation.definitely) || usesEmployee(translation.possibly),
    needsEvaluation: translation.definitely !== translation.possibly,
  };
}
