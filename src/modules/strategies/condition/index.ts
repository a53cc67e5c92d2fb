/**
 * The condition language of strategies (SPEC §3): parse and validate, print canonically, evaluate
 * for one user, and translate to SQL for scans. Pure code: no GraphQL, no database access of its own.
 */
import type { ConditionAst } from './ast.js';
import { ConditionError, conditionError, invalidConditionError, MAX_CONDITION_LENGTH } from './condition.errors.js';
import { parseConditionText } from './parser.js';
import { normalize } from './printer.js';

export type {
  AccessAfterNode,
  AmountLiteral,
  AndNode,
  BelongToNode,
  ConditionAst,
  ConditionFunctionName,
  ConditionNode,
  ConstantNode,
  GithubStarNode,
  IntegerLiteral,
  IsVipNode,
  MatchUserNode,
  NotNode,
  OrNode,
  QuotaLeNode,
  RegisterBeforeNode,
  SourceSpan,
  StringLiteral,
  TimestampLiteral,
} from './ast.js';
export { CONDITION_FUNCTIONS, usesGateway, walkCondition } from './ast.js';
export {
  ConditionError,
  invalidConditionError,
  MAX_CONDITION_DEPTH,
  MAX_CONDITION_LENGTH,
} from './condition.errors.js';
export {
  type ConditionContext,
  type ConditionOutcome,
  type ConditionUser,
  evaluateCondition,
} from './evaluator.js';
export { normalize as normalizeCondition, quoteConditionString } from './printer.js';
export {
  type ConditionSql,
  type ConditionSqlOptions,
  candidateUsersQuery,
  conditionFromClause,
  conditionToSql,
  type SqlFragment,
  type SqlParam,
  toNumberedPlaceholders,
} from './sql.js';

export type ParsedCondition =
  | { ok: true; ast: ConditionAst; normalized: string }
  | { ok: false; error: ConditionError };

/**
 * Parses a condition; timestamps without an offset are read in `timeZone` (the configured zone).
 * Never throws for bad input: the error carries the message and 0-based position.
 */
export function parseCondition(text: string, timeZone: string): ParsedCondition {
  try {
    const ast = parseConditionText(text, timeZone);
    const normalized = normalize(ast);
    // The canonical form adds ", " between arguments and `not(…)`: a long text can print longer than
    // the limit, and a client that saves what validateCondition answered would then be refused.
    if (normalized.length > MAX_CONDITION_LENGTH) {
      throw conditionError(
        `The expression is too long in its normalized form: ${normalized.length} characters, at most ${MAX_CONDITION_LENGTH} are allowed`,
        text.length,
      );
    }
    return { ok: true, ast, normalized };
  } catch (error) {
    if (error instanceof ConditionError) return { ok: false, error };
    throw error;
  }
}

/** Parses a condition or throws DomainError INVALID_CONDITION (message, `position` in extensions). */
export function assertValidCondition(text: string, timeZone: string): { ast: ConditionAst; normalized: string } {
  const parsed = parseCondition(text, timeZone);
  if (!parsed.ok) throw invalidConditionError(parsed.error);
  return { ast: parsed.ast, normalized: parsed.normalized };
}
