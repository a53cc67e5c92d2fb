import { centsToDecimalString } from '../../../money.js';
import type { ConditionNode, StringLiteral } from './ast.js';

/** A string literal as the language writes it: double quotes, with `"` and `\` escaped. */
export function quoteConditionString(value: string): string {
  return `"${value.replace(/[\\"]/g, (char) => `\\${char}`)}"`;
}

const quote = (literal: StringLiteral) => quoteConditionString(literal.value);

/**
 * The canonical text of a condition: prefix form, `", "` between arguments, strings re-escaped,
 * timestamps exactly as written, numbers in plain decimal (`is-vip(02)` → `is-vip(2)`, `10.50` → `10.5`).
 * Parsing the result gives the same tree, so normalize(parse(normalize(x))) === normalize(x).
 */
export function normalize(node: ConditionNode): string {
  switch (node.kind) {
    case 'constant':
      return node.value ? 'true()' : 'false()';
    case 'match-user':
      return `match-user(${node.userIds.map(quote).join(', ')})`;
    case 'register-before':
    case 'access-after':
      return `${node.kind}(${quoteConditionString(node.timestamp.text)})`;
    case 'github-star':
      return `github-star(${quote(node.project)})`;
    case 'quota-le':
      return `quota-le(${quote(node.model)}, ${centsToDecimalString(node.amount.cents)})`;
    case 'is-vip':
      return `is-vip(${node.level.value})`;
    case 'belong-to':
      return `belong-to(${node.organizations.map(quote).join(', ')})`;
    case 'and':
    case 'or':
      return `${node.kind}(${node.operands.map(normalize).join(', ')})`;
    case 'not':
      return `not(${normalize(node.operand)})`;
  }
}
