import { badInput } from './errors.js';

/**
 * Quota amounts are exact: inside the server they are integer cents (a JS number, exact up to
 * 2^53, far above numeric(14,2)'s 10^14 cents); the database holds numeric(14,2); the API carries
 * decimals with at most two fraction digits as Float. Never add floats: convert at the edges.
 */
export type Cents = number;

/** numeric(14,2): the largest amount a column can hold, in cents. */
export const MAX_CENTS: Cents = 99_999_999_999_999;

/**
 * Reads an API amount (a Float) as cents, refusing NaN, Infinity, more than two decimals and
 * values out of range. `what` names the input in the error message.
 */
export function amountToCents(value: number, what = 'amount'): Cents {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw badInput(`${what} must be a finite number`);
  // Counted on the shortest decimal text of the double (what the client wrote: 0.07 reads "0.07"),
  // not by a round trip with a tolerance: a tolerance relative to the value let 123456789012.345
  // through, silently rounded to .35.
  if (fractionDigits(value) > 2) throw badInput(`${what} must have at most 2 decimal places, got ${value}`);
  const cents = Math.round(value * 100);
  if (Math.abs(cents) > MAX_CENTS) throw badInput(`${what} is too large: ${value}`);
  return cents;
}

/** Digits after the point in the shortest decimal form of a finite number ("1.5e-7" has 8). */
function fractionDigits(value: number): number {
  const [mantissa = '', exponent = '0'] = String(Math.abs(value)).split('e');
  const decimals = mantissa.split('.')[1]?.length ?? 0;
  return Math.max(0, decimals - Number(exponent));
}

/** Cents to the API's Float (exact for two decimals as far as doubles print them). */
export function centsToAmount(cents: Cents): number {
  return cents / 100;
}

/**
 * Cents as a plain decimal string: `100`, `12.5`, `-30`, `0.01`. Used for numeric columns and for
 * the gateway, which wants plain decimals (never exponent notation).
 */
export function centsToDecimalString(cents: Cents): string {
  if (!Number.isSafeInteger(cents)) throw new Error(`not a whole number of cents: ${cents}`);
  const negative = cents < 0;
  const abs = Math.abs(cents);
  const whole = Math.floor(abs / 100);
  const fraction = abs % 100;
  let text = String(whole);
  if (fraction !== 0) text += `.${String(fraction).padStart(2, '0').replace(/0$/, '')}`;
  return negative ? `-${text}` : text;
}

/**
 * A decimal string or number from the database or the gateway to cents. numeric(14,2) strings are
 * exact; a gateway value with more precision is rounded half away from zero to the cent.
 */
export function decimalToCents(value: string | number): Cents {
  const text = typeof value === 'number' ? numberToPlainString(value) : value.trim();
  const match = /^([+-])?(\d+)(?:\.(\d+))?$/.exec(text);
  if (!match) throw new Error(`not a decimal: ${JSON.stringify(value)}`);
  const [, sign, whole, fraction = ''] = match;
  let cents = Number(whole) * 100 + Number(fraction.padEnd(2, '0').slice(0, 2));
  if (fraction.length > 2 && Number(fraction[2]) >= 5) cents += 1;
  return sign === '-' ? -cents : cents;
}

function numberToPlainString(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
  // toFixed never uses exponent notation below 1e21; beyond that no amount is meaningful anyway.
  if (Math.abs(value) >= 1e21) throw new Error(`number too large: ${value}`);
  return Number.isInteger(value) ? value.toFixed(0) : value.toFixed(6);
}
