import type { Cents } from '../../../money.js';

/**
 * The condition AST (SPEC §3). Every node carries its source span: `start` is the 0-based offset of
 * its first character, `end` the offset just past its last one. Infix forms (`a and b`, `not a`) are
 * parsed into the same nodes as their prefix forms; `a and b and c` becomes one `and` with three
 * operands, while explicit nesting (`and(and(a, b), c)`) is kept as written.
 */
export interface SourceSpan {
  start: number;
  end: number;
}

/** A string argument, unescaped. */
export interface StringLiteral extends SourceSpan {
  kind: 'string';
  value: string;
}

/** A timestamp argument: the string as written (printed back unchanged) and the instant it means. */
export interface TimestampLiteral extends SourceSpan {
  kind: 'timestamp';
  text: string;
  instant: Date;
}

export interface IntegerLiteral extends SourceSpan {
  kind: 'integer';
  value: number;
}

/** A quota amount, exact in cents. */
export interface AmountLiteral extends SourceSpan {
  kind: 'amount';
  cents: Cents;
}

/** `true()` / `false()`. */
export interface ConstantNode extends SourceSpan {
  kind: 'constant';
  value: boolean;
}

export interface MatchUserNode extends SourceSpan {
  kind: 'match-user';
  userIds: StringLiteral[];
}

/** `created_at <= timestamp`. */
export interface RegisterBeforeNode extends SourceSpan {
  kind: 'register-before';
  timestamp: TimestampLiteral;
}

/** `access_time > timestamp`. */
export interface AccessAfterNode extends SourceSpan {
  kind: 'access-after';
  timestamp: TimestampLiteral;
}

export interface GithubStarNode extends SourceSpan {
  kind: 'github-star';
  project: StringLiteral;
}

/** Remaining quota (gateway total − used) `<= amount`; `model` is accepted and ignored. */
export interface QuotaLeNode extends SourceSpan {
  kind: 'quota-le';
  model: StringLiteral;
  amount: AmountLiteral;
}

/** `vip >= level`. */
export interface IsVipNode extends SourceSpan {
  kind: 'is-vip';
  level: IntegerLiteral;
}

export interface BelongToNode extends SourceSpan {
  kind: 'belong-to';
  organizations: StringLiteral[];
}

export interface AndNode extends SourceSpan {
  kind: 'and';
  operands: ConditionNode[];
}

export interface OrNode extends SourceSpan {
  kind: 'or';
  operands: ConditionNode[];
}

export interface NotNode extends SourceSpan {
  kind: 'not';
  operand: ConditionNode;
}

export type ConditionNode =
  | ConstantNode
  | MatchUserNode
  | RegisterBeforeNode
  | AccessAfterNode
  | GithubStarNode
  | QuotaLeNode
  | IsVipNode
  | BelongToNode
  | AndNode
  | OrNode
  | NotNode;

/** A parsed condition: its root node. */
export type ConditionAst = ConditionNode;

/** The function names of the language, in the order of SPEC §3. */
export const CONDITION_FUNCTIONS = [
  'true',
  'false',
  'match-user',
  'register-before',
  'access-after',
  'github-star',
  'quota-le',
  'is-vip',
  'belong-to',
  'and',
  'or',
  'not',
] as const;

export type ConditionFunctionName = (typeof CONDITION_FUNCTIONS)[number];

/** Calls `visit` on every node, parents before children. */
export function walkCondition(node: ConditionNode, visit: (node: ConditionNode) => void): void {
  visit(node);
  if (node.kind === 'and' || node.kind === 'or') for (const operand of node.operands) walkCondition(operand, visit);
  else if (node.kind === 'not') walkCondition(node.operand, visit);
}

/** Whether evaluating the condition may need the gateway (it contains `quota-le`). */
export function usesGateway(ast: ConditionAst): boolean {
  let found = false;
  walkCondition(ast, (node) => {
    if (node.kind === 'quota-le') found = true;
  });
  return found;
}
