import type { ConditionAst, ConditionNode } from './ast.js';
import { conditionError, MAX_CONDITION_DEPTH, MAX_CONDITION_LENGTH } from './condition.errors.js';
import { buildCall, type CallArgument, isConditionFunction, knownFunctionList } from './functions.js';
import { type Token, tokenize } from './lexer.js';

/**
 * Recursive-descent parser for SPEC §3:
 *
 *   expr    := orExpr
 *   orExpr  := andExpr ("or" andExpr)*
 *   andExpr := unary ("and" unary)*
 *   unary   := "not" unary | primary
 *   primary := "(" expr ")" | call
 *   call    := NAME "(" [arg ("," arg)*] ")"
 *   arg     := expr | STRING | NUMBER
 *
 * After an operand, `and`/`or` are infix keywords; where an operand is expected, `and(`, `or(` and
 * `not(` are calls and a bare `not` is the prefix operator. Arguments are checked against the
 * function's rules as soon as its call closes, so the first error from the left is the one reported.
 * Throws ConditionError.
 */
export function parseConditionText(text: string, timeZone: string): ConditionAst {
  if (text.length > MAX_CONDITION_LENGTH) {
    throw conditionError(
      `The expression is too long: ${text.length} characters, at most ${MAX_CONDITION_LENGTH} are allowed`,
      MAX_CONDITION_LENGTH,
    );
  }
  const parser = new Parser(tokenize(text), timeZone);
  const ast = parser.parseWhole();
  checkTreeDepth(ast, 1);
  return ast;
}

/**
 * The limit also holds for the tree itself, where every node is a level: infix forms are shallower
 * in the text than in prefix form (`a or b and c` prints as `or(a, and(b, c))`), and the normalized
 * text must parse again.
 */
function checkTreeDepth(node: ConditionNode, depth: number): void {
  if (depth > MAX_CONDITION_DEPTH) {
    throw conditionError(`The expression is nested too deeply (more than ${MAX_CONDITION_DEPTH} levels)`, node.start);
  }
  if (node.kind === 'and' || node.kind === 'or') {
    for (const operand of node.operands) checkTreeDepth(operand, depth + 1);
  } else if (node.kind === 'not') {
    checkTreeDepth(node.operand, depth + 1);
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the expression';
    case 'name':
      return `'${token.value}'`;
    case 'string':
      return `the string ${token.text}`;
    case 'number':
      return `the number ${token.text}`;
    default:
      return `'${token.kind}'`;
  }
}

class Parser {
  private index = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly timeZone: string,
  ) {}

  parseWhole(): ConditionAst {
    if (this.peek().kind === 'end') throw conditionError('The expression is empty', 0);
    const root = this.parseExpression(0);
    const rest = this.peek();
    if (rest.kind === ')') throw conditionError("Unbalanced parentheses: ')' has no matching '('", rest.start);
    if (rest.kind !== 'end') {
      throw conditionError(`Trailing input after a complete expression: found ${describe(rest)}`, rest.start);
    }
    return root;
  }

  private peek(ahead = 0): Token {
    return this.tokens[Math.min(this.index + ahead, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== 'end') this.index += 1;
    return token;
  }

  private isKeyword(token: Token, keyword: 'and' | 'or' | 'not'): boolean {
    return token.kind === 'name' && token.value === keyword;
  }

  /** Each call, group and prefix `not` is one level deeper; refuse past the limit. */
  private enterLevel(depth: number, at: Token): void {
    if (depth > MAX_CONDITION_DEPTH) {
      throw conditionError(`The expression is nested too deeply (more than ${MAX_CONDITION_DEPTH} levels)`, at.start);
    }
  }

  private parseExpression(depth: number): ConditionNode {
    return this.parseInfix('or', () => this.parseInfix('and', () => this.parseUnary(depth)));
  }

  /** `operand (keyword operand)*`, folded into one n-ary node. */
  private parseInfix(keyword: 'and' | 'or', parseOperand: () => ConditionNode): ConditionNode {
    const first = parseOperand();
    const operands = [first];
    while (this.isKeyword(this.peek(), keyword)) {
      this.next();
      operands.push(parseOperand());
    }
    if (operands.length === 1) return first;
    return { kind: keyword, operands, start: first.start, end: operands[operands.length - 1]!.end };
  }

  private parseUnary(depth: number): ConditionNode {
    const token = this.peek();
    if (this.isKeyword(token, 'not') && this.peek(1).kind !== '(') {
      this.next();
      this.enterLevel(depth + 1, token);
      const operand = this.parseUnary(depth + 1);
      return { kind: 'not', operand, start: token.start, end: operand.end };
    }
    return this.parsePrimary(depth);
  }

  private parsePrimary(depth: number): ConditionNode {
    const token = this.peek();
    if (token.kind === '(') {
      this.next();
      this.enterLevel(depth + 1, token);
      const inner = this.parseExpression(depth + 1);
      const close = this.peek();
      if (close.kind === 'end') throw this.neverClosed(token);
      if (close.kind !== ')') throw conditionError(`Expected ')' but found ${describe(close)}`, close.start);
      this.next();
      return inner;
    }
    if (token.kind === 'name') return this.parseCall(depth);
    throw conditionError(`Expected a condition (a function call or '(') but found ${describe(token)}`, token.start);
  }

  private parseCall(depth: number): ConditionNode {
    const name = this.next();
    if (!isConditionFunction(name.value)) {
      throw conditionError(`Unknown function '${name.value}' (known: ${knownFunctionList()})`, name.start);
    }
    const open = this.peek();
    if (open.kind !== '(') {
      throw conditionError(`Expected '(' after '${name.value}' but found ${describe(open)}`, open.start);
    }
    this.next();
    this.enterLevel(depth + 1, name);
    const args: CallArgument[] = [];
    let close = this.peek();
    if (close.kind === ')') {
      this.next();
    } else {
      for (;;) {
        args.push(this.parseArgument(depth + 1, open));
        const separator = this.next();
        if (separator.kind === ',') continue;
        if (separator.kind === ')') {
          close = separator;
          break;
        }
        if (separator.kind === 'end') throw this.neverClosed(open);
        throw conditionError(`Expected ',' or ')' but found ${describe(separator)}`, separator.start);
      }
    }
    return buildCall(name.value, args, { start: name.start, end: close.end, closeAt: close.start }, this.timeZone);
  }

  private parseArgument(depth: number, open: Token): CallArgument {
    const token = this.peek();
    if (token.kind === 'string') {
      this.next();
      return { kind: 'string', value: token.value, start: token.start, end: token.end };
    }
    if (token.kind === 'number') {
      this.next();
      return { kind: 'number', text: token.value, start: token.start, end: token.end };
    }
    if (token.kind === ')' || token.kind === ',') {
      throw conditionError(`Expected an argument but found ${describe(token)}`, token.start);
    }
    if (token.kind === 'end') throw this.neverClosed(open);
    const node = this.parseExpression(depth);
    return { kind: 'expression', node, start: node.start, end: node.end };
  }

  private neverClosed(open: Token) {
    return conditionError("Unbalanced parentheses: '(' is never closed", open.start);
  }
}
