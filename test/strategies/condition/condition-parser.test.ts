import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../../src/errors.js';
import {
  assertValidCondition,
  ConditionError,
  type ConditionNode,
  MAX_CONDITION_DEPTH,
  MAX_CONDITION_LENGTH,
  normalizeCondition,
  parseCondition,
  usesGateway,
  walkCondition,
} from '../../../src/modules/strategies/condition/index.js';

const SHANGHAI = 'Asia/Shanghai';
const NEW_YORK = 'America/New_York';

/** expression → canonical form (SPEC §3): every function, nesting, n-ary and/or, infix forms and precedence. */
const VALID: [expression: string, normalized: string][] = [
  ['true()', 'true()'],
  ['false()', 'false()'],
  [' true ( ) ', 'true()'],
  ['\n\tis-vip(1)\r\n', 'is-vip(1)'],
  ['match-user("u1")', 'match-user("u1")'],
  ['match-user("u1","u2",   "u3")', 'match-user("u1", "u2", "u3")'],
  ['match-user("a\\"b", "c\\\\d")', 'match-user("a\\"b", "c\\\\d")'],
  ['match-user("研发 ,中心")', 'match-user("研发 ,中心")'],
  ['register-before("2025-01-01")', 'register-before("2025-01-01")'],
  ['register-before("2025-01-01 08:30:00")', 'register-before("2025-01-01 08:30:00")'],
  ['register-before("2025-01-01T08:30:00+08:00")', 'register-before("2025-01-01T08:30:00+08:00")'],
  ['register-before("2024-02-29")', 'register-before("2024-02-29")'],
  ['access-after("2025-06-30T23:59:59Z")', 'access-after("2025-06-30T23:59:59Z")'],
  ['access-after("2025-01-01T00:00:00.123-05:00")', 'access-after("2025-01-01T00:00:00.123-05:00")'],
  ['access-after("2025-01-01T00:00+0800")', 'access-after("2025-01-01T00:00+0800")'],
  ['github-star("zgsm-ai.zgsm")', 'github-star("zgsm-ai.zgsm")'],
  ['quota-le("gpt-4", 100)', 'quota-le("gpt-4", 100)'],
  ['quota-le("gpt-4", 10.50)', 'quota-le("gpt-4", 10.5)'],
  ['quota-le("", -5)', 'quota-le("", -5)'],
  ['quota-le("m", 0.01)', 'quota-le("m", 0.01)'],
  ['quota-le("m", -0)', 'quota-le("m", 0)'],
  ['is-vip(2)', 'is-vip(2)'],
  ['is-vip(0)', 'is-vip(0)'],
  ['is-vip(007)', 'is-vip(7)'],
  ['is-vip(-1)', 'is-vip(-1)'],
  ['belong-to("研发中心")', 'belong-to("研发中心")'],
  ['belong-to("A","B")', 'belong-to("A", "B")'],
  ['and(is-vip(2),github-star("zgsm-ai.zgsm"))', 'and(is-vip(2), github-star("zgsm-ai.zgsm"))'],
  ['and(true(), false(), true())', 'and(true(), false(), true())'],
  ['or(is-vip(1), is-vip(2), is-vip(3), is-vip(4))', 'or(is-vip(1), is-vip(2), is-vip(3), is-vip(4))'],
  ['not(is-vip(1))', 'not(is-vip(1))'],
  ['not is-vip(1)', 'not(is-vip(1))'],
  ['not not true()', 'not(not(true()))'],
  ['not (true())', 'not(true())'],
  ['is-vip(1) and is-vip(2)', 'and(is-vip(1), is-vip(2))'],
  ['is-vip(1) and is-vip(2) and is-vip(3)', 'and(is-vip(1), is-vip(2), is-vip(3))'],
  ['is-vip(1) or is-vip(2) or is-vip(3)', 'or(is-vip(1), is-vip(2), is-vip(3))'],
  // `and` binds tighter than `or`.
  ['is-vip(1) or is-vip(2) and is-vip(3)', 'or(is-vip(1), and(is-vip(2), is-vip(3)))'],
  ['is-vip(1) and is-vip(2) or is-vip(3)', 'or(and(is-vip(1), is-vip(2)), is-vip(3))'],
  ['is-vip(1) and is-vip(2) or is-vip(3) and is-vip(4)', 'or(and(is-vip(1), is-vip(2)), and(is-vip(3), is-vip(4)))'],
  ['(is-vip(1) or is-vip(2)) and is-vip(3)', 'and(or(is-vip(1), is-vip(2)), is-vip(3))'],
  // `not` binds tighter than both.
  ['not is-vip(1) and is-vip(2)', 'and(not(is-vip(1)), is-vip(2))'],
  ['not is-vip(1) or is-vip(2)', 'or(not(is-vip(1)), is-vip(2))'],
  ['not (is-vip(1) and is-vip(2))', 'not(and(is-vip(1), is-vip(2)))'],
  ['not(is-vip(1)) and is-vip(2)', 'and(not(is-vip(1)), is-vip(2))'],
  ['and(is-vip(1) or is-vip(2), not github-star("x"))', 'and(or(is-vip(1), is-vip(2)), not(github-star("x")))'],
  ['((true()))', 'true()'],
  ['and(and(true(), false()), true())', 'and(and(true(), false()), true())'],
  ['true() or or(false(), true())', 'or(true(), or(false(), true()))'],
  ['true() and(false())', 'and(true(), false())'],
  ['quota-le("m", 5) and is-vip(1)', 'and(quota-le("m", 5), is-vip(1))'],
  [
    'belong-to("研发中心") and (register-before("2025-01-01") or access-after("2025-06-01 12:00:00"))',
    'and(belong-to("研发中心"), or(register-before("2025-01-01"), access-after("2025-06-01 12:00:00")))',
  ],
];

const NAMES =
  'true, false, match-user, register-before, access-after, github-star, quota-le, is-vip, belong-to, and, or, not';
const FORMATS = '"YYYY-MM-DD HH:MM:SS", "YYYY-MM-DD" or ISO-8601 with an offset';

/** expression → the error: message (without the trailing " at position N") and position. */
const INVALID: [expression: string, message: string, position: number][] = [
  // empty
  ['', 'The expression is empty', 0],
  ['   \n ', 'The expression is empty', 0],
  // unknown function
  ['foo()', `Unknown function 'foo' (known: ${NAMES})`, 0],
  ['is-vip(1) and bar(2)', `Unknown function 'bar' (known: ${NAMES})`, 14],
  ['is-vip', "Expected '(' after 'is-vip' but found the end of the expression", 6],
  ['is-vip 1', "Expected '(' after 'is-vip' but found the number 1", 7],
  // wrong argument count
  ['true(1)', "'true' takes no arguments, got 1", 5],
  ['is-vip()', "'is-vip' takes 1 argument (level), got 0", 7],
  ['is-vip(1, 2)', "'is-vip' takes 1 argument (level), got 2", 10],
  ['quota-le("m")', "'quota-le' takes 2 arguments (model, amount), got 1", 12],
  ['register-before("2025-01-01", "2025-01-02")', "'register-before' takes 1 argument (timestamp), got 2", 30],
  ['match-user()', "'match-user' takes at least 1 argument (user ids), got 0", 11],
  ['belong-to()', "'belong-to' takes at least 1 argument (organizations), got 0", 10],
  ['and(true())', "'and' takes at least 2 arguments (expressions), got 1", 10],
  ['or()', "'or' takes at least 2 arguments (expressions), got 0", 3],
  ['not(true(), false())', "'not' takes 1 argument (expression), got 2", 12],
  // wrong argument type or value
  ['is-vip("2")', `'is-vip' argument 1 (level) must be an integer, got the string "2"`, 7],
  ['is-vip(2.5)', "'is-vip' argument 1 (level) must be an integer, got the number 2.5", 7],
  ['is-vip(99999999999)', "'is-vip' argument 1 (level) must be between -2147483648 and 2147483647, got 99999999999", 7],
  ['is-vip(true())', "'is-vip' argument 1 (level) must be an integer, got an expression", 7],
  ['match-user("a", 42)', "'match-user' argument 2 (user id) must be a string, got the number 42", 16],
  ['match-user(true())', "'match-user' argument 1 (user id) must be a string, got an expression", 11],
  ['match-user("")', "'match-user' argument 1 (user id) must not be empty", 11],
  ['and("a", true())', `'and' argument 1 (expression) must be an expression (a function call), got the string "a"`, 4],
  ['not(1)', "'not' argument 1 (expression) must be an expression (a function call), got the number 1", 4],
  ['quota-le(5, 5)', "'quota-le' argument 1 (model) must be a string, got the number 5", 9],
  ['quota-le("m", "5")', `'quota-le' argument 2 (amount) must be a number, got the string "5"`, 14],
  ['quota-le("m", 1.234)', "'quota-le' argument 2 (amount) must have at most 2 decimal places, got 1.234", 14],
  ['quota-le("m", 1000000000000000)', "'quota-le' argument 2 (amount) is too large: 1000000000000000", 14],
  ['github-star("")', "'github-star' argument 1 (project) must not be empty", 12],
  ['github-star(" zgsm-ai.zgsm")', "'github-star' argument 1 (project) must not start or end with white space", 12],
  ['github-star(1)', "'github-star' argument 1 (project) must be a string, got the number 1", 12],
  ['belong-to("A", "")', "'belong-to' argument 2 (organization) must not be empty", 15],
  [
    'register-before(20250101)',
    "'register-before' argument 1 (timestamp) must be a timestamp string, got the number 20250101",
    16,
  ],
  // bad timestamp
  [
    'register-before("2025-02-30")',
    `Bad timestamp "2025-02-30" for 'register-before': February 2025 has no day 30`,
    16,
  ],
  [
    'register-before("2023-02-29")',
    `Bad timestamp "2023-02-29" for 'register-before': February 2023 has no day 29`,
    16,
  ],
  [
    'register-before("2025-04-31 10:00:00")',
    `Bad timestamp "2025-04-31 10:00:00" for 'register-before': April 2025 has no day 31`,
    16,
  ],
  ['register-before("2025-13-01")', `Bad timestamp "2025-13-01" for 'register-before': there is no month 13`, 16],
  [
    'access-after("2025-01-01 24:00:00")',
    `Bad timestamp "2025-01-01 24:00:00" for 'access-after': there is no hour 24`,
    13,
  ],
  [
    'access-after("2025-01-01 12:60:00")',
    `Bad timestamp "2025-01-01 12:60:00" for 'access-after': there is no minute 60`,
    13,
  ],
  [
    'access-after("2025-01-01 12:00:60")',
    `Bad timestamp "2025-01-01 12:00:60" for 'access-after': there is no second 60`,
    13,
  ],
  ['access-after("2025/01/01")', `Bad timestamp "2025/01/01" for 'access-after': expected ${FORMATS}`, 13],
  ['access-after("2025-1-1")', `Bad timestamp "2025-1-1" for 'access-after': expected ${FORMATS}`, 13],
  ['access-after("yesterday")', `Bad timestamp "yesterday" for 'access-after': expected ${FORMATS}`, 13],
  [
    'access-after("2025-01-01T00:00:00")',
    `Bad timestamp "2025-01-01T00:00:00" for 'access-after': expected ${FORMATS} (an ISO-8601 time needs an offset such as +08:00 or Z)`,
    13,
  ],
  [
    'access-after("2025-01-01T00:00:00+25:00")',
    `Bad timestamp "2025-01-01T00:00:00+25:00" for 'access-after': the offset +25:00 is not a valid UTC offset`,
    13,
  ],
  [
    'access-after("2025-01-01T00:00:00.1234Z")',
    `Bad timestamp "2025-01-01T00:00:00.1234Z" for 'access-after': fractions of a second are limited to milliseconds`,
    13,
  ],
  [
    'access-after("1899-12-31")',
    `Bad timestamp "1899-12-31" for 'access-after': the year must be between 1900 and 9999`,
    13,
  ],
  // unbalanced parentheses
  ['(true()', "Unbalanced parentheses: '(' is never closed", 0],
  ['is-vip(1', "Unbalanced parentheses: '(' is never closed", 6],
  ['is-vip(', "Unbalanced parentheses: '(' is never closed", 6],
  ['match-user("a",', "Unbalanced parentheses: '(' is never closed", 10],
  ['and(true(), (false()', "Unbalanced parentheses: '(' is never closed", 12],
  ['true())', "Unbalanced parentheses: ')' has no matching '('", 6],
  ['(true()))', "Unbalanced parentheses: ')' has no matching '('", 8],
  [')', "Expected a condition (a function call or '(') but found ')'", 0],
  // unterminated string, bad escapes
  ['"abc', 'Unterminated string', 0],
  ['match-user("abc)', 'Unterminated string', 11],
  ['match-user("abc\\")', 'Unterminated string', 11],
  ['match-user("a\\nb")', 'Invalid escape "\\\\n" in string (only \\" and \\\\ are allowed)', 13],
  // trailing input
  ['true() false()', "Trailing input after a complete expression: found 'false'", 7],
  ['true() "x"', 'Trailing input after a complete expression: found the string "x"', 7],
  ['is-vip(1) 2', 'Trailing input after a complete expression: found the number 2', 10],
  ['true() not false()', "Trailing input after a complete expression: found 'not'", 7],
  // other syntax errors
  ['true() and', "Expected a condition (a function call or '(') but found the end of the expression", 10],
  ['not', "Expected a condition (a function call or '(') but found the end of the expression", 3],
  ['42', "Expected a condition (a function call or '(') but found the number 42", 0],
  ['"x"', `Expected a condition (a function call or '(') but found the string "x"`, 0],
  ['not "x"', `Expected a condition (a function call or '(') but found the string "x"`, 4],
  ['is-vip(1) & is-vip(2)', 'Unexpected character "&"', 10],
  ['TRUE()', 'Unexpected character "T" (function names and keywords are lower-case)', 0],
  ['true() AND false()', 'Unexpected character "A" (function names and keywords are lower-case)', 7],
  ["match-user('a')", `Unexpected character "'" (strings are written in double quotes)`, 11],
  ['is-vip(1.)', 'Malformed number "1."', 7],
  ['is-vip(-)', 'Unexpected character "-"', 7],
  ['match-user("a",)', "Expected an argument but found ')'", 15],
  ['match-user(,"a")', "Expected an argument but found ','", 11],
  ['is-vip(1 2)', "Expected ',' or ')' but found the number 2", 9],
  ['(true() false())', "Expected ')' but found 'false'", 8],
];

function parseError(expression: string, timeZone = SHANGHAI): ConditionError {
  const parsed = parseCondition(expression, timeZone);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(expression)} to be refused, got ${parsed.normalized}`);
  return parsed.error;
}

describe('condition language: golden table', () => {
  it('has at least 60 rows', () => {
    expect(VALID.length + INVALID.length).toBeGreaterThanOrEqual(60);
  });

  it.each(VALID)('%j normalizes to %j', (expression, normalized) => {
    const parsed = parseCondition(expression, SHANGHAI);
    expect(parsed).toMatchObject({ ok: true, normalized });
  });

  it.each(INVALID)('%j is refused: %s (position %i)', (expression, message, position) => {
    const error = parseError(expression);
    expect(error).toBeInstanceOf(ConditionError);
    expect({ message: error.message, position: error.position }).toEqual({
      message: `${message} at position ${position}`,
      position,
    });
  });

  it.each(VALID)('normalization of %j is stable', (expression) => {
    const first = parseCondition(expression, SHANGHAI);
    if (!first.ok) throw first.error;
    const again = parseCondition(first.normalized, SHANGHAI);
    if (!again.ok) throw again.error;
    expect(again.normalized).toBe(first.normalized);
    expect(stripSpans(again.ast)).toEqual(stripSpans(first.ast));
  });
});

/** The tree without source positions, to compare trees parsed from different texts. */
function stripSpans(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripSpans);
  if (value instanceof Date) return value;
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== 'start' && key !== 'end')
        .map(([key, inner]) => [key, stripSpans(inner)]),
    );
  }
  return value;
}

describe('condition language: timestamps', () => {
  const cases: [text: string, zone: string, instant: string][] = [
    // Without an offset: the configured zone (not UTC, as the old system did).
    ['2025-01-01', SHANGHAI, '2024-12-31T16:00:00.000Z'],
    ['2025-01-01 08:30:00', SHANGHAI, '2025-01-01T00:30:00.000Z'],
    ['2024-02-29 23:59:59', SHANGHAI, '2024-02-29T15:59:59.000Z'],
    ['2025-01-15', NEW_YORK, '2025-01-15T05:00:00.000Z'],
    ['2025-07-01 12:00:00', NEW_YORK, '2025-07-01T16:00:00.000Z'],
    // A wall time in the spring-forward gap moves forward by the gap (02:30 → 03:30 EDT); in the autumn
    // overlap the earlier instant. A date whose midnight is skipped starts when the day does (01:00).
    ['2025-03-09 02:30:00', NEW_YORK, '2025-03-09T07:30:00.000Z'],
    ['2024-09-08', 'America/Santiago', '2024-09-08T04:00:00.000Z'],
    ['2025-11-02 01:30:00', NEW_YORK, '2025-11-02T05:30:00.000Z'],
    // With an offset: the zone does not matter.
    ['2025-01-01T08:00:00+08:00', SHANGHAI, '2025-01-01T00:00:00.000Z'],
    ['2025-01-01T08:00:00+08:00', NEW_YORK, '2025-01-01T00:00:00.000Z'],
    ['2025-01-01T00:00:00Z', NEW_YORK, '2025-01-01T00:00:00.000Z'],
    ['2025-01-01T00:00:00.5-05:30', SHANGHAI, '2025-01-01T05:30:00.500Z'],
    ['2025-01-01T00:00+0800', NEW_YORK, '2024-12-31T16:00:00.000Z'],
    ['2025-01-01T00:00:00-03', SHANGHAI, '2025-01-01T03:00:00.000Z'],
  ];

  it.each(cases)('%j in %s is %s', (text, zone, instant) => {
    for (const name of ['register-before', 'access-after']) {
      const parsed = parseCondition(`${name}(${JSON.stringify(text)})`, zone);
      if (!parsed.ok) throw parsed.error;
      expect(parsed.ast).toMatchObject({ kind: name, timestamp: { kind: 'timestamp', text } });
      expect((parsed.ast as { timestamp: { instant: Date } }).timestamp.instant.toISOString()).toBe(instant);
      // Printed as given, whatever the zone.
      expect(parsed.normalized).toBe(`${name}(${JSON.stringify(text)})`);
    }
  });

  it('reads the same text as different instants in different zones', () => {
    const shanghai = parseCondition('register-before("2025-06-01 00:00:00")', SHANGHAI);
    const newYork = parseCondition('register-before("2025-06-01 00:00:00")', NEW_YORK);
    if (!shanghai.ok || !newYork.ok) throw new Error('expected both to parse');
    const instant = (ast: ConditionNode) => (ast as { timestamp: { instant: Date } }).timestamp.instant.getTime();
    expect(instant(newYork.ast) - instant(shanghai.ast)).toBe(12 * 3600_000);
  });
});

describe('condition language: positions', () => {
  it('puts 0-based start/end spans on every node and literal', () => {
    const text = 'is-vip(1) and (github-star("x") or not match-user("a", "b"))';
    const parsed = parseCondition(text, SHANGHAI);
    if (!parsed.ok) throw parsed.error;
    const slices: string[] = [];
    walkCondition(parsed.ast, (node) => slices.push(text.slice(node.start, node.end)));
    expect(slices).toEqual([
      'is-vip(1) and (github-star("x") or not match-user("a", "b")',
      'is-vip(1)',
      'github-star("x") or not match-user("a", "b")',
      'github-star("x")',
      'not match-user("a", "b")',
      'match-user("a", "b")',
    ]);
    expect(parsed.ast).toMatchObject({
      kind: 'and',
      start: 0,
      operands: [
        { kind: 'is-vip', start: 0, end: 9, level: { value: 1, start: 7, end: 8 } },
        {
          kind: 'or',
          operands: [
            { kind: 'github-star', project: { value: 'x', start: 27, end: 30 } },
            {
              kind: 'not',
              start: 35,
              operand: {
                userIds: [
                  { start: 50, end: 53 },
                  { start: 55, end: 58 },
                ],
              },
            },
          ],
        },
      ],
    });
  });

  it('gives the position of timestamps, amounts and nested calls', () => {
    const text = 'or(quota-le("m", 1.5), register-before("2025-01-01"))';
    const parsed = parseCondition(text, SHANGHAI);
    if (!parsed.ok) throw parsed.error;
    expect(parsed.ast).toMatchObject({
      start: 0,
      end: text.length,
      operands: [
        {
          kind: 'quota-le',
          start: 3,
          end: 21,
          model: { start: 12, end: 15 },
          amount: { cents: 150, start: 17, end: 20 },
        },
        { kind: 'register-before', start: 23, end: 52, timestamp: { start: 39, end: 51 } },
      ],
    });
  });
});

describe('condition language: limits', () => {
  it(`refuses expressions longer than ${MAX_CONDITION_LENGTH} characters`, () => {
    const longest = `match-user("${'x'.repeat(MAX_CONDITION_LENGTH - 14)}")`;
    expect(longest).toHaveLength(MAX_CONDITION_LENGTH);
    expect(parseCondition(longest, SHANGHAI).ok).toBe(true);
    const error = parseError(`${longest} `);
    expect(error.message).toBe(
      `The expression is too long: ${MAX_CONDITION_LENGTH + 1} characters, at most ${MAX_CONDITION_LENGTH} are allowed at position ${MAX_CONDITION_LENGTH}`,
    );
    expect(error.position).toBe(MAX_CONDITION_LENGTH);
  });

  it('refuses an expression whose normalized form is longer than the limit (what it accepts, it can print)', () => {
    // `"a",` is 4 characters and prints as `"a", ` (5): the text fits, its normalized form does not.
    const ids = (count: number) => `match-user(${Array.from({ length: count }, () => '"a"').join(',')})`;
    const fits = ids(798);
    const parsed = parseCondition(fits, SHANGHAI);
    if (!parsed.ok) throw parsed.error;
    expect(parsed.normalized.length).toBeLessThanOrEqual(MAX_CONDITION_LENGTH);
    expect(parseCondition(parsed.normalized, SHANGHAI)).toMatchObject({ ok: true, normalized: parsed.normalized });

    const text = ids(800);
    expect(text.length).toBeLessThanOrEqual(MAX_CONDITION_LENGTH);
    const error = parseError(text);
    expect(error.message).toBe(
      `The expression is too long in its normalized form: 4010 characters, at most ${MAX_CONDITION_LENGTH} are allowed at position ${text.length}`,
    );
    expect(error.position).toBe(text.length);
  });

  const tooDeep = `The expression is nested too deeply (more than ${MAX_CONDITION_DEPTH} levels)`;

  it(`accepts ${MAX_CONDITION_DEPTH} levels of calls and refuses one more at the call that is too deep`, () => {
    const nested = (levels: number) => `${'not('.repeat(levels - 1)}true()${')'.repeat(levels - 1)}`;
    expect(parseCondition(nested(MAX_CONDITION_DEPTH), SHANGHAI).ok).toBe(true);
    const error = parseError(nested(MAX_CONDITION_DEPTH + 1));
    expect(error.message).toBe(`${tooDeep} at position ${4 * MAX_CONDITION_DEPTH}`);
    expect(error.position).toBe(4 * MAX_CONDITION_DEPTH);
  });

  it('counts parentheses and prefix not as levels', () => {
    const parens = `${'('.repeat(MAX_CONDITION_DEPTH)}true()${')'.repeat(MAX_CONDITION_DEPTH)}`;
    expect(parseError(parens).position).toBe(MAX_CONDITION_DEPTH);
    expect(parseError(parens).message).toBe(`${tooDeep} at position ${MAX_CONDITION_DEPTH}`);
    const nots = `${'not '.repeat(MAX_CONDITION_DEPTH)}true()`;
    expect(parseError(nots).position).toBe(4 * MAX_CONDITION_DEPTH);
    expect(parseCondition(`${'not '.repeat(MAX_CONDITION_DEPTH - 1)}true()`, SHANGHAI).ok).toBe(true);
  });

  it('limits the depth of the tree too, so the normalized form of an accepted expression always parses', () => {
    // 30 calls of `not` and then infix or/and: 31 levels as written, but `or(…, and(true(), …))` puts
    // the last calls at level 33.
    const prefix = 'not('.repeat(MAX_CONDITION_DEPTH - 2);
    const text = `${prefix}true() or true() and true()${')'.repeat(MAX_CONDITION_DEPTH - 2)}`;
    const error = parseError(text);
    expect(error.message).toBe(`${tooDeep} at position ${prefix.length + 'true() or '.length}`);
    const fits = `${'not('.repeat(MAX_CONDITION_DEPTH - 2)}true() or true()${')'.repeat(MAX_CONDITION_DEPTH - 2)}`;
    const parsed = parseCondition(fits, SHANGHAI);
    if (!parsed.ok) throw parsed.error;
    expect(parseCondition(parsed.normalized, SHANGHAI).ok).toBe(true);
  });

  it('parses a long flat chain without deep recursion', () => {
    const chain = Array.from({ length: 300 }, () => 'is-vip(1)').join(' or ');
    const parsed = parseCondition(chain, SHANGHAI);
    if (!parsed.ok) throw parsed.error;
    expect(parsed.ast.kind === 'or' && parsed.ast.operands).toHaveLength(300);
  });
});

describe('condition language: public API', () => {
  it('assertValidCondition throws INVALID_CONDITION with the position in the extensions', () => {
    let caught: unknown;
    try {
      assertValidCondition('is-vip(2) and github-star(', SHANGHAI);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    const error = caught as DomainError;
    expect(error.code).toBe(ErrorCode.INVALID_CONDITION);
    expect(error.message).toBe("Unbalanced parentheses: '(' is never closed at position 25");
    expect(error.extensions).toEqual({ position: 25 });
  });

  it('assertValidCondition returns the tree and the canonical text of a valid condition', () => {
    const valid = assertValidCondition('is-vip(2) and github-star("zgsm-ai.zgsm")', SHANGHAI);
    expect(valid.normalized).toBe('and(is-vip(2), github-star("zgsm-ai.zgsm"))');
    expect(normalizeCondition(valid.ast)).toBe(valid.normalized);
  });

  it('usesGateway tells whether quota-le appears anywhere', () => {
    const gateway = (text: string) => {
      const parsed = parseCondition(text, SHANGHAI);
      if (!parsed.ok) throw parsed.error;
      return usesGateway(parsed.ast);
    };
    expect(gateway('quota-le("m", 1)')).toBe(true);
    expect(gateway('is-vip(1) or not (true() and quota-le("m", 1))')).toBe(true);
    expect(gateway('is-vip(1) or not (true() and belong-to("quota-le"))')).toBe(false);
    expect(gateway('true()')).toBe(false);
  });
});
