import { type Cents, MAX_CENTS } from '../../../money.js';
import { trimStarItem } from '../../users/starred-projects.js';
import type {
  AmountLiteral,
  ConditionFunctionName,
  ConditionNode,
  IntegerLiteral,
  SourceSpan,
  StringLiteral,
  TimestampLiteral,
} from './ast.js';
import { conditionError } from './condition.errors.js';
import { readTimestamp } from './timestamp.js';

/** One argument as the parser found it, before the function's rules give it a meaning. */
export type CallArgument =
  | { kind: 'string'; value: string; start: number; end: number }
  | { kind: 'number'; text: string; start: number; end: number }
  | { kind: 'expression'; node: ConditionNode; start: number; end: number };

/** Where a call sits: from its name to its closing parenthesis (`closeAt` is that parenthesis). */
export interface CallSite extends SourceSpan {
  closeAt: number;
}

type ParameterKind = 'string' | 'timestamp' | 'integer' | 'amount' | 'expression';

interface Parameter {
  name: string;
  kind: ParameterKind;
  /**
   * Refuse "" (and, with `trimmed`, the white space `github_star` items are trimmed of): such an
   * argument could never match.
   */
  nonEmpty?: boolean;
  trimmed?: boolean;
}

interface Signature {
  /** Fixed parameters, in order. */
  parameters: Parameter[];
  /** Repeated parameter: any number of them, at least `min`. */
  rest?: { parameter: Parameter; plural: string; min: number };
}

const expression: Parameter = { name: 'expression', kind: 'expression' };

/** The argument rules of SPEC §3's table. */
const SIGNATURES: Record<ConditionFunctionName, Signature> = {
  true: { parameters: [] },
  false: { parameters: [] },
  'match-user': {
    parameters: [],
    rest: { parameter: { name: 'user id', kind: 'string', nonEmpty: true }, plural: 'user ids', min: 1 },
  },
  'register-before': { parameters: [{ name: 'timestamp', kind: 'timestamp' }] },
  'access-after': { parameters: [{ name: 'timestamp', kind: 'timestamp' }] },
  'github-star': { parameters: [{ name: 'project', kind: 'string', nonEmpty: true, trimmed: true }] },
  'quota-le': {
    parameters: [
      { name: 'model', kind: 'string' },
      { name: 'amount', kind: 'amount' },
    ],
  },
  'is-vip': { parameters: [{ name: 'level', kind: 'integer' }] },
  'belong-to': {
    parameters: [],
    rest: { parameter: { name: 'organization', kind: 'string', nonEmpty: true }, plural: 'organizations', min: 1 },
  },
  and: { parameters: [], rest: { parameter: expression, plural: 'expressions', min: 2 } },
  or: { parameters: [], rest: { parameter: expression, plural: 'expressions', min: 2 } },
  not: { parameters: [expression] },
};

export function isConditionFunction(name: string): name is ConditionFunctionName {
  return Object.hasOwn(SIGNATURES, name);
}

export function knownFunctionList(): string {
  return Object.keys(SIGNATURES).join(', ');
}

/** Typed values of a call's arguments, checked against its signature. */
type CheckedValue = StringLiteral | TimestampLiteral | IntegerLiteral | AmountLiteral | ConditionNode;

/**
 * Checks a call's arguments against the function's signature and builds its AST node.
 * Throws ConditionError: too many arguments at the first one too many, too few at the closing
 * parenthesis, a wrong type or value at the argument.
 */
export function buildCall(
  name: ConditionFunctionName,
  args: CallArgument[],
  site: CallSite,
  timeZone: string,
): ConditionNode {
  const signature = SIGNATURES[name];
  checkCount(name, signature, args, site);
  const values = args.map((arg, index) =>
    checkArgument(name, index, signature.parameters[index] ?? signature.rest!.parameter, arg, timeZone),
  );
  const span = { start: site.start, end: site.end };
  const strings = () => values as StringLiteral[];
  const nodes = () => values as ConditionNode[];
  switch (name) {
    case 'true':
    case 'false':
      return { kind: 'constant', value: name === 'true', ...span };
    case 'match-user':
      return { kind: 'match-user', userIds: strings(), ...span };
    case 'register-before':
    case 'access-after':
      return { kind: name, timestamp: values[0] as TimestampLiteral, ...span };
    case 'github-star':
      return { kind: 'github-star', project: values[0] as StringLiteral, ...span };
    case 'quota-le':
      return { kind: 'quota-le', model: values[0] as StringLiteral, amount: values[1] as AmountLiteral, ...span };
    case 'is-vip':
      return { kind: 'is-vip', level: values[0] as IntegerLiteral, ...span };
    case 'belong-to':
      return { kind: 'belong-to', organizations: strings(), ...span };
    case 'and':
    case 'or':
      return { kind: name, operands: nodes(), ...span };
    case 'not':
      return { kind: 'not', operand: nodes()[0]!, ...span };
  }
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

function checkCount(name: string, signature: Signature, args: CallArgument[], site: CallSite): void {
  const fixed = signature.parameters.length;
  const got = `got ${args.length}`;
  if (signature.rest) {
    const min = fixed + signature.rest.min;
    if (args.length < min) {
      throw conditionError(
        `'${name}' takes at least ${plural(min, 'argument')} (${signature.rest.plural}), ${got}`,
        site.closeAt,
      );
    }
    return;
  }
  if (args.length === fixed) return;
  const expected =
    fixed === 0
      ? 'takes no arguments'
      : `takes ${plural(fixed, 'argument')} (${signature.parameters.map((p) => p.name).join(', ')})`;
  const position = args.length > fixed ? args[fixed]!.start : site.closeAt;
  throw conditionError(`'${name}' ${expected}, ${got}`, position);
}

function describeArgument(arg: CallArgument): string {
  if (arg.kind === 'string') return `the string ${JSON.stringify(arg.value)}`;
  if (arg.kind === 'number') return `the number ${arg.text}`;
  return 'an expression';
}

function checkArgument(
  name: string,
  index: number,
  parameter: Parameter,
  arg: CallArgument,
  timeZone: string,
): CheckedValue {
  const label = `'${name}' argument ${index + 1} (${parameter.name})`;
  const wrongType = (wanted: string) =>
    conditionError(`${label} must be ${wanted}, got ${describeArgument(arg)}`, arg.start);
  const span = { start: arg.start, end: arg.end };
  switch (parameter.kind) {
    case 'expression':
      if (arg.kind !== 'expression') throw wrongType('an expression (a function call)');
      return arg.node;
    case 'string':
      if (arg.kind !== 'string') throw wrongType('a string');
      if (parameter.nonEmpty && arg.value === '') throw conditionError(`${label} must not be empty`, arg.start);
      if (parameter.trimmed && trimStarItem(arg.value) !== arg.value) {
        throw conditionError(`${label} must not start or end with white space`, arg.start);
      }
      return { kind: 'string', value: arg.value, ...span };
    case 'timestamp': {
      if (arg.kind !== 'string') throw wrongType('a timestamp string');
      const reading = readTimestamp(arg.value, timeZone);
      if (!reading.ok) {
        throw conditionError(`Bad timestamp ${JSON.stringify(arg.value)} for '${name}': ${reading.problem}`, arg.start);
      }
      return { kind: 'timestamp', text: arg.value, instant: reading.instant, ...span };
    }
    case 'integer': {
      if (arg.kind !== 'number' || arg.text.includes('.')) throw wrongType('an integer');
      const value = Number(arg.text);
      if (!Number.isSafeInteger(value) || value < -2_147_483_648 || value > 2_147_483_647) {
        throw conditionError(`${label} must be between -2147483648 and 2147483647, got ${arg.text}`, arg.start);
      }
      return { kind: 'integer', value: value === 0 ? 0 : value, ...span };
    }
    case 'amount': {
      if (arg.kind !== 'number') throw wrongType('a number');
      const cents = numberTextToCents(arg.text);
      if (cents === null)
        throw conditionError(`${label} must have at most 2 decimal places, got ${arg.text}`, arg.start);
      if (Math.abs(cents) > MAX_CENTS) throw conditionError(`${label} is too large: ${arg.text}`, arg.start);
      return { kind: 'amount', cents, ...span };
    }
  }
}

/** Exact cents of a NUMBER token (no float arithmetic); null when it has more than two decimals. */
function numberTextToCents(text: string): Cents | null {
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = (negative ? text.slice(1) : text).split('.') as [string, string?];
  if (fraction.length > 2) return null;
  const digits = whole.replace(/^0+(?=\d)/, '');
  // Beyond 15 whole digits the amount is out of range anyway; keep the number exact below that.
  if (digits.length > 15) return Number.POSITIVE_INFINITY;
  const cents = Number(digits) * 100 + Number(fraction.padEnd(2, '0'));
  return negative && cents !== 0 ? -cents : cents;
}
