import { conditionError } from './condition.errors.js';

/**
 * Tokens of the condition language (SPEC §3). `and`, `or` and `not` are NAME tokens; the parser
 * decides from their place whether they are infix keywords or function names.
 */
export type TokenKind = 'name' | 'string' | 'number' | '(' | ')' | ',' | 'end';

export interface Token {
  kind: TokenKind;
  /** The source text of the token (for a string: with its quotes and escapes). */
  text: string;
  /** name: the name; string: the unescaped value; number: the digits as written. */
  value: string;
  start: number;
  end: number;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r', '\f', '\v']);

const isLowerLetter = (char: string) => char >= 'a' && char <= 'z';
const isDigit = (char: string | undefined) => char !== undefined && char >= '0' && char <= '9';
const isNameChar = (char: string) => isLowerLetter(char) || isDigit(char) || char === '-';

/** Splits an expression into tokens, ending with an `end` token; throws ConditionError on a bad character. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < text.length) {
    const char = text[index]!;
    if (WHITESPACE.has(char)) {
      index += 1;
    } else if (char === '(' || char === ')' || char === ',') {
      tokens.push({ kind: char, text: char, value: char, start: index, end: index + 1 });
      index += 1;
    } else if (char === '"') {
      const token = readString(text, index);
      tokens.push(token);
      index = token.end;
    } else if (isDigit(char) || (char === '-' && isDigit(text[index + 1]))) {
      const token = readNumber(text, index);
      tokens.push(token);
      index = token.end;
    } else if (isLowerLetter(char)) {
      let end = index + 1;
      while (end < text.length && isNameChar(text[end]!)) end += 1;
      const name = text.slice(index, end);
      tokens.push({ kind: 'name', text: name, value: name, start: index, end });
      index = end;
    } else {
      throw conditionError(unexpectedCharacter(char), index);
    }
  }
  tokens.push({ kind: 'end', text: '', value: '', start: text.length, end: text.length });
  return tokens;
}

function unexpectedCharacter(char: string): string {
  const shown = JSON.stringify(char);
  if (char >= 'A' && char <= 'Z') return `Unexpected character ${shown} (function names and keywords are lower-case)`;
  if (char === "'") return `Unexpected character ${shown} (strings are written in double quotes)`;
  return `Unexpected character ${shown}`;
}

/** A double-quoted string; only \" and \\ are escapes. */
function readString(text: string, start: number): Token {
  let value = '';
  let index = start + 1;
  while (index < text.length) {
    const char = text[index]!;
    if (char === '"') {
      return { kind: 'string', text: text.slice(start, index + 1), value, start, end: index + 1 };
    }
    if (char === '\\') {
      const next = text[index + 1];
      if (next === undefined) break;
      if (next !== '"' && next !== '\\') {
        throw conditionError(
          `Invalid escape ${JSON.stringify(`\\${next}`)} in string (only \\" and \\\\ are allowed)`,
          index,
        );
      }
      value += next;
      index += 2;
    } else {
      value += char;
      index += 1;
    }
  }
  throw conditionError('Unterminated string', start);
}

/** NUMBER := -?[0-9]+(\.[0-9]+)? ; a dot without digits after it is refused rather than left dangling. */
function readNumber(text: string, start: number): Token {
  let end = start + (text[start] === '-' ? 1 : 0);
  while (isDigit(text[end])) end += 1;
  if (text[end] === '.') {
    const fractionStart = end + 1;
    end = fractionStart;
    while (isDigit(text[end])) end += 1;
    if (end === fractionStart)
      throw conditionError(`Malformed number ${JSON.stringify(text.slice(start, end))}`, start);
  }
  const number = text.slice(start, end);
  return { kind: 'number', text: number, value: number, start, end };
}
