import type { MikroORM } from '@mikro-orm/postgresql';
import { badInput } from '../../errors.js';
import type { EmployeeDirectory } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { forEachConcurrently } from '../quota/ledger-user-scan.js';
import type { UserDirectory } from '../users/user-directory.js';
import { assertValidCondition, conditionFromClause, evaluateCondition } from './condition/index.js';
import { conditionContext } from './condition-context.js';
import {
  afterUser,
  type CandidateSource,
  EMPLOYEE_COLUMNS,
  type EvaluatedUserRow,
  toEvaluatedUser,
  USER_COLUMNS,
} from './strategy-candidates.js';

export interface StrategyPreview {
  matchedUsers: number;
  totalUsers: number;
  sampleUserIds: string[];
  /** Users the gateway could not answer for (`quota-le`); not counted as matched. */
  undecidedUsers: number;
}

export const MAX_PREVIEW_SAMPLE = 100;
const EVALUATION_CHUNK = 500;
const EVALUATION_CONCURRENCY = 8;

/**
 * previewCondition (SPEC §3): how many users the condition matches now. SQL counts the users it can
 * decide; only the users it cannot (their answer hangs on `quota-le`) are evaluated, with the gateway,
 * in keyset chunks.
 */
export class StrategyPreviewer {
  constructor(
    private readonly orm: MikroORM,
    private readonly directory: UserDirectory,
    private readonly candidates: CandidateSource,
    private readonly employees: EmployeeDirectory,
    private readonly gateway: GatewayClient,
    private readonly timeZone: string,
  ) {}

  async preview(expression: string, sample: number): Promise<StrategyPreview> {
    if (!Number.isInteger(sample) || sample < 0 || sample > MAX_PREVIEW_SAMPLE) {
      throw badInput(`sample must be between 0 and ${MAX_PREVIEW_SAMPLE}, got ${sample}`);
    }
    const { ast } = assertValidCondition(expression, this.timeZone);
    const sql = this.candidates.translate(ast);
    const from = conditionFromClause(sql.needsEmployeeJoin);
    const em = this.directory.em();
    const [totals] = await em.execute<{ total: string | number; matched: string | number }[]>(
      `select (select count(*) from auth_users) as total,
              (select count(*) from ${from} where ${sql.definitelyTrue.sql}) as matched`,
      sql.definitelyTrue.params,
    );
    let matchedUsers = Number(totals?.matched ?? 0);
    const sampleIds =
      sample === 0
        ? []
        : (
            await em.execute<{ id: string }[]>(
              `select u.id from ${from} where ${sql.definitelyTrue.sql} order by u.id limit ?`,
              [...sql.definitelyTrue.params, sample],
            )
          ).map((row) => row.id);
    let undecidedUsers = 0;

    if (sql.needsEvaluation) {
      const context = conditionContext(this.orm, this.employees, this.gateway);
      const undecided = `(${sql.possiblyTrue.sql}) and not (${sql.definitelyTrue.sql})`;
      const params = [...sql.possiblyTrue.params, ...sql.definitelyTrue.params];
      const joinColumns = sql.needsEmployeeJoin ? `, ${EMPLOYEE_COLUMNS}` : '';
      let after: string | null = null;
      for (;;) {
        const page = afterUser(after);
        const rows: EvaluatedUserRow[] = await em.execute<EvaluatedUserRow[]>(
          `select ${USER_COLUMNS}${joinColumns}
           from ${from} where ${page.sql} and ${undecided} order by u.id limit ?`,
          [...page.params, ...params, EVALUATION_CHUNK],
        );
        if (rows.length === 0) break;
        after = rows.at(-1)!.id;
        await forEachConcurrently(rows, EVALUATION_CONCURRENCY, async (row) => {
          const outcome = await evaluateCondition(ast, toEvaluatedUser(row, sql.needsEmployeeJoin), context);
          if (!outcome.ok) undecidedUsers += 1;
          else if (outcome.matches) {
            matchedUsers += 1;
            if (sampleIds.length < sample * 2) sampleIds.push(row.id);
          }
        });
        if (rows.length < EVALUATION_CHUNK) break;
      }
    }
    return {
      matchedUsers,
      totalUsers: Number(totals?.total ?? 0),
      sampleUserIds: [...new Set(sampleIds)].sort(compareIds).slice(0, sample),
      undecidedUsers,
    };
  }
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
