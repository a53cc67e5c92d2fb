import { badInput } from '../../errors.js';
import { amountToCents, type Cents, centsToAmount, MAX_CENTS } from '../../money.js';

/**
 * Validation of the ledger's API inputs (SPEC §11: bad input of any kind is refused before anything
 * changes). Each function throws BAD_USER_INPUT naming the input.
 */

export const MAX_USER_ID_LENGTH = 200;
export const MAX_REASON_LENGTH = 500;
export const MAX_REFERENCE_LENGTH = 200;

export function requireUserId(value: unknown, what = 'userId'): string {
  if (typeof value !== 'string' || value.trim() === '') throw badInput(`${what} must not be empty`);
  if (value.length > MAX_USER_ID_LENGTH) throw badInput(`${what} is longer than ${MAX_USER_ID_LENGTH} characters`);
  return value;
}

/** A positive amount with at most two decimals, as cents. */
export function requirePositiveAmount(value: unknown, what = 'amount'): Cents {
  const cents = amountToCents(value as number, what);
  if (cents <= 0) throw badInput(`${what} must be greater than 0, got ${value}`);
  return cents;
}

export function requireReason(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw badInput('reason must not be empty');
  const reason = value.trim();
  if (reason.length > MAX_REASON_LENGTH) throw badInput(`reason is longer than ${MAX_REASON_LENGTH} characters`);
  return reason;
}

/** Absent (null/undefined) → undefined; otherwise 1–200 characters, kept exactly as given. */
export function optionalReference(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.trim() === '') throw badInput('reference must not be empty when given');
  if (value.length > MAX_REFERENCE_LENGTH)
    throw badInput(`reference is longer than ${MAX_REFERENCE_LENGTH} characters`);
  return value;
}

export function requireDate(value: unknown, what: string): Date {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) throw badInput(`${what} must be a valid date`);
  return value;
}

/**
 * What every grant must be (QuotaService.grantQuota, and a strategy's chunk grant before it writes a
 * chunk in bulk): a positive amount the ledger can hold, and an expiry still ahead of `now`.
 */
export function requireGrantTerms(amount: Cents, expiryDate: unknown, now: Date): Date {
  if (!Number.isSafeInteger(amount) || amount <= 0 || amount > MAX_CENTS) {
    throw badInput(`a grant needs an amount greater than 0, got ${centsToAmount(amount)}`);
  }
  const expiry = requireDate(expiryDate, 'expiryDate');
  if (expiry.getTime() <= now.getTime()) throw badInput(`a grant cannot expire in the past (${expiry.toISOString()})`);
  return expiry;
}

/** An optional time range: both ends inclusive, `from` not after `to`. */
export function optionalRange(from: unknown, to: unknown): { from?: Date; to?: Date } {
  const range = {
    from: from === undefined || from === null ? undefined : requireDate(from, 'from'),
    to: to === undefined || to === null ? undefined : requireDate(to, 'to'),
  };
  if (range.from && range.to && range.from.getTime() > range.to.getTime()) {
    throw badInput('from must not be after to');
  }
  return range;
}
