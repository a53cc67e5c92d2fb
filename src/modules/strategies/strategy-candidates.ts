import type { MikroORM } from '@mikro-orm/postgresql';
import type { EntityManager } from '../../db/orm.js';
import { splitDepartmentPath } from '../employees/employee-department.entity.js';
import type { UserDirectory } from '../users/user-directory.js';
import {
  type ConditionAst,
  type ConditionSql,
  type ConditionUser,
  conditionFromClause,
  conditionToSql,
  type SqlParam,
} from './condition/index.js';

/**
 * The users a run of one strategy should look at (SPEC §3 "scans must be fast", §4): the condition's
 * SQL translation filters in the database, and so do the strategy's exactly-once rules — users
 * already granted by this single strategy, already at `maxExecPerUser` completed grants, or already
 * executed in this fire are never read. Users come in keyset-paged chunks (by id), so memory stays
 * flat whatever the size of the directory.
 *
 * Each candidate says whether SQL has decided the condition for it (`decided`); the others (those
 * whose answer hangs on `quota-le`, or on `belong-to` when the directory lives in another database)
 * go to the evaluator, and only they cost a gateway look-up.
 */

export interface CandidateUser extends ConditionUser {
  /** Known when the query joined the HR mirror: the path (null = no employee record). */
  departmentPath?: string[] | null;
}

/**
 * A user the run should look at. `decided`: SQL found the condition true, and only the id is needed
 * (strategies decided entirely in SQL read nothing else). Otherwise the condition may hold, and the
 * evaluator decides with the user's attributes.
 */
export type Candidate = { decided: true; userId: string } | { decided: false; user: CandidateUser };

/** One keyset page of candidates; `rows` counts the users read, excluded ones too. */
interface CandidateChunk {
  candidates: Candidate[];
  rows: number;
  lastId: string | null;
}

/** Which executions keep a user out of this run. */
export interface ExecutionFilter {
  strategyId: string;
  single: boolean;
  /** Periodic only; 0 = unlimited. */
  maxExecPerUser: number;
  fireKey: string;
}

/** A directory user as the condition evaluator reads it (USER_COLUMNS, plus EMPLOYEE_COLUMNS when joined). */
export interface EvaluatedUserRow {
  id: string;
  /** Milliseconds since the epoch (bigint, so the driver answers a string). */
  created_ms: string | number | null;
  access_ms: string | number | null;
  vip: number | null;
  github_star: string | null;
  company: string | null;
  employee_number: string | null;
  has_employee?: boolean | null;
  dept_path?: string | null;
}

/** A candidate row: only `id` and `decided` when the condition needs no evaluation. */
interface UserRow extends EvaluatedUserRow {
  decided: boolean;
}

export const DEFAULT_CANDIDATE_CHUNK = 500;

/** The range of a JS Date (±8.64e15 ms), which PostgreSQL's timestamps exceed at both ends. */
const DATE_LIMIT_MS = '8640000000000000';

/**
 * A timestamptz column as whole milliseconds, clamped to what a Date can hold: the directory may hold
 * 'infinity' / '-infinity' (not ours to clean up), which no bigint can take — unclamped, one such row
 * failed the whole chunk, so a strategy granted nobody. Clamped, it still compares as SQL compares it:
 * after / before every instant a condition can name. Null stays null.
 */
function epochMilliseconds(column: string): string {
  return `case when isfinite(${column})
      then greatest(-${DATE_LIMIT_MS}, least(${DATE_LIMIT_MS}, floor(extract(epoch from ${column}) * 1000)))::bigint
    when ${column} > 'epoch' then ${DATE_LIMIT_MS} when ${column} < 'epoch' then -${DATE_LIMIT_MS} end`;
}

/**
 * What the evaluator reads of a user (`u`, auth_users) — and of their HR record (`e`) when joined.
 * Times as whole milliseconds since the epoch, rounded down: the precision the SQL translation compares
 * at (condition/sql.ts), so both sides decide alike; and the ORM's driver would answer a timestamptz as
 * text, which the evaluator cannot compare.
 */
export const USER_COLUMNS = `u.id, ${epochMilliseconds('u.created_at')} as created_ms, ${epochMilliseconds('u.access_time')} as access_ms,
  u.vip, u.github_star, u.company, u.employee_number`;
export const EMPLOYEE_COLUMNS = 'e.employee_number is not null as has_employee, e.dept_full_level_names as dept_path';

/** What a chunk query reads of each user: everything the evaluator may need, or just the id. */
function userColumns(translation: ConditionSql): string {
  return translation.needsEvaluation ? USER_COLUMNS : 'u.id';
}

function toCandidate(row: UserRow, joined: boolean): Candidate {
  if (row.decided) return { decided: true, userId: row.id };
  return { decided: false, user: toEvaluatedUser(row, joined) };
}

/** The evaluator's user from its row; `joined`: the row carries EMPLOYEE_COLUMNS (null path = no HR record). */
export function toEvaluatedUser(row: EvaluatedUserRow, joined: boolean): CandidateUser {
  const user: CandidateUser = {
    id: row.id,
    createdAt: instantOf(row.created_ms),
    accessTime: instantOf(row.access_ms),
    vip: row.vip,
    githubStar: row.github_star,
    company: row.company,
    employeeNumber: row.employee_number,
  };
  if (joined) user.departmentPath = row.has_employee ? splitDepartmentPath(row.dept_path) : null;
  return user;
}

/**
 * Keyset paging over `auth_users u` in the order of its id. The first page has no lower bound: the
 * column may be a uuid (SPEC §2), which no text like '' can be compared with.
 */
export function afterUser(after: string | null): { sql: string; params: string[] } {
  return after === null ? { sql: 'true', params: [] } : { sql: 'u.id > ?', params: [after] };
}

function instantOf(milliseconds: string | number | null): Date | null {
  return milliseconds === null ? null : new Date(Number(milliseconds));
}

export class CandidateSource {
  constructor(
    private readonly orm: MikroORM,
    private readonly directory: UserDirectory,
    private readonly syncEnabled: boolean,
  ) {}

  /** The SQL translation for where the users live (joins the HR mirror only in the main database). */
  translate(ast: ConditionAst): ConditionSql {
    return conditionToSql(ast, { syncEnabled: this.syncEnabled, departmentsInSql: this.directory.sharesMainDatabase });
  }

  /** Candidates of one strategy run, chunk by chunk. */
  async *chunks(
    ast: ConditionAst,
    filter: ExecutionFilter,
    chunkSize = DEFAULT_CANDIDATE_CHUNK,
  ): AsyncGenerator<Candidate[]> {
    const translation = this.translate(ast);
    let after: string | null = null;
    for (;;) {
      const chunk: CandidateChunk = this.directory.sharesMainDatabase
        ? await this.sharedChunk(translation, filter, after, chunkSize)
        : await this.separateChunk(translation, filter, after, chunkSize);
      if (chunk.rows === 0) return;
      after = chunk.lastId;
      if (chunk.candidates.length > 0) yield chunk.candidates;
      if (chunk.rows < chunkSize) return;
    }
  }

  /** One query: the condition and the execution rules together, over the main database. */
  private async sharedChunk(
    translation: ConditionSql,
    filter: ExecutionFilter,
    after: string | null,
    limit: number,
  ): Promise<CandidateChunk> {
    // The join is there whenever the SQL reads the HR mirror; its columns are read only for the evaluator.
    const readsEmployee = translation.needsEmployeeJoin && translation.needsEvaluation;
    const params: SqlParam[] = [];
    const decided = translation.needsEvaluation ? translation.definitelyTrue : { sql: 'true', params: [] };
    params.push(...decided.params);
    const employeeColumns = readsEmployee ? `, ${EMPLOYEE_COLUMNS}` : '';
    const page = afterUser(after);
    params.push(...page.params, ...translation.possiblyTrue.params);
    const exclusion = this.exclusionSql(filter, params);
    params.push(limit);
    const rows = await this.orm.em.fork().execute<UserRow[]>(
      `select ${userColumns(translation)}${employeeColumns}, (${decided.sql}) as decided
       from ${conditionFromClause(translation.needsEmployeeJoin)}
       where ${page.sql} and (${translation.possiblyTrue.sql}) ${exclusion}
       order by u.id
       limit ?`,
      params,
    );
    // Excluded users are not returned, so a short chunk does not mean the end: keyset on what came back.
    return {
      candidates: rows.map((row) => toCandidate(row, readsEmployee)),
      rows: rows.length,
      lastId: rows.at(-1)?.id ?? after,
    };
  }

  private exclusionSql(filter: ExecutionFilter, params: SqlParam[]): string {
    params.push(filter.strategyId, filter.fireKey);
    let sql = `and not exists (select 1 from quota_execute x where x.strategy_id = ? and x.user_id = u.id::text and (x.fire_key = ?${
      filter.single ? ` or (x.single and x.status in ('processing', 'completed'))` : ''
    }))`;
    if (!filter.single && filter.maxExecPerUser > 0) {
      params.push(filter.strategyId, filter.maxExecPerUser);
      sql += ` and (select count(*) from quota_execute c where c.strategy_id = ? and c.user_id = u.id::text and c.status = 'completed') < ?`;
    }
    return sql;
  }

  /**
   * The directory in its own database: the condition there, the execution rules here, per chunk.
   * The page may then be all excluded users; the loop goes on from its last id.
   */
  private async separateChunk(
    translation: ConditionSql,
    filter: ExecutionFilter,
    after: string | null,
    limit: number,
  ): Promise<CandidateChunk> {
    const decided = translation.needsEvaluation ? translation.definitelyTrue : { sql: 'true', params: [] };
    const page = afterUser(after);
    const rows = await this.directory.em().execute<UserRow[]>(
      `select ${userColumns(translation)}, (${decided.sql}) as decided from auth_users u
         where ${page.sql} and (${translation.possiblyTrue.sql}) order by u.id limit ?`,
      [...decided.params, ...page.params, ...translation.possiblyTrue.params, limit],
    );
    if (rows.length === 0) return { candidates: [], rows: 0, lastId: after };
    const excluded = await excludedUsers(
      this.orm.em.fork(),
      filter,
      rows.map((row) => row.id),
    );
    return {
      candidates: rows.filter((row) => !excluded.has(row.id)).map((row) => toCandidate(row, false)),
      rows: rows.length,
      lastId: rows.at(-1)!.id,
    };
  }
}

/** The users among `userIds` that the execution rules keep out of this run. */
async function excludedUsers(em: EntityManager, filter: ExecutionFilter, userIds: string[]): Promise<Set<string>> {
  const ids = JSON.stringify(userIds);
  const params: SqlParam[] = [filter.strategyId, ids, filter.fireKey];
  let sql = `select user_id from quota_execute
     where strategy_id = ? and user_id in (select jsonb_array_elements_text(?::jsonb))
       and (fire_key = ?${filter.single ? ` or (single and status in ('processing', 'completed'))` : ''})`;
  if (!filter.single && filter.maxExecPerUser > 0) {
    sql += ` union select user_id from quota_execute
       where strategy_id = ? and user_id in (select jsonb_array_elements_text(?::jsonb)) and status = 'completed'
       group by user_id having count(*) >= ?`;
    params.push(filter.strategyId, ids, filter.maxExecPerUser);
  }
  const rows = await em.execute<{ user_id: string }[]>(sql, params);
  return new Set(rows.map((row) => row.user_id));
}
