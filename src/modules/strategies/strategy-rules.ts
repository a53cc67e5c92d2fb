import { endOfDayAfter, endOfMonth } from '../../clock.js';
import type { DefaultExpiryRule } from '../../config.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import { amountToCents, type Cents } from '../../money.js';
import { cronProblem } from '../jobs/cron.js';
import { assertValidCondition } from './condition/index.js';
import type { StoredStrategyType } from './strategy.entity.js';

/**
 * The rules of SPEC §4 for what a strategy may be, checked on the whole resulting strategy (a create,
 * or a partial update merged onto the stored one), and the expiry rule of a grant.
 */

export const MAX_NAME_LENGTH = 100;
export const MAX_TITLE_LENGTH = 200;
export const MAX_MODEL_LENGTH = 100;
export const MAX_CRON_LENGTH = 200;
/** 1e9 quota units, in cents. */
export const MAX_STRATEGY_AMOUNT: Cents = 100_000_000_000;
/** About 100 years: beyond that an expiry date is a typo, and timestamps run out of range. */
export const MAX_VALIDITY_DAYS = 36_500;

/** A strategy as it is about to be stored, before validation (amount already read as cents). */
export interface StrategyDraft {
  name: string;
  title: string;
  type: StoredStrategyType;
  amount: Cents;
  model: string | null;
  periodicExpr: string | null;
  condition: string;
  maxExecPerUser: number;
  validityDays: number | null;
  enabled: boolean;
}

/** Characters as people count them (code points), not UTF-16 units. */
function characterCount(text: string): number {
  return Array.from(text).length;
}

function checkText(value: string, what: string, max: number): string {
  const trimmed = value.trim();
  if (trimmed === '') throw badInput(`${what} must not be empty`);
  if (characterCount(trimmed) > max)
    throw badInput(`${what} must be at most ${max} characters, got ${characterCount(trimmed)}`);
  return trimmed;
}

/** Reads an API amount: more than 2 decimals, not finite, ≤ 0 or above 1e9 → BAD_USER_INPUT. */
export function readStrategyAmount(value: number): Cents {
  const cents = amountToCents(value, 'amount');
  if (cents <= 0) throw badInput(`amount must be greater than 0, got ${value}`);
  if (cents > MAX_STRATEGY_AMOUNT) throw badInput(`amount must be at most 1000000000, got ${value}`);
  return cents;
}

/** A cron for a periodic strategy, or INVALID_CRON naming what is wrong. */
export function checkCron(expression: string | null | undefined, timeZone: string): string {
  if (expression === null || expression === undefined || expression.trim() === '') {
    throw new DomainError(ErrorCode.INVALID_CRON, 'a PERIODIC strategy needs periodicExpr (a cron expression)');
  }
  if (expression.length > MAX_CRON_LENGTH) {
    throw new DomainError(ErrorCode.INVALID_CRON, `periodicExpr must be at most ${MAX_CRON_LENGTH} characters`);
  }
  const problem = cronProblem(expression, timeZone);
  if (problem)
    throw new DomainError(
      ErrorCode.INVALID_CRON,
      `periodicExpr ${JSON.stringify(expression)} is not valid: ${problem}`,
    );
  return expression;
}

/**
 * Validates a whole strategy and returns what to store: name and title trimmed, the cron kept as
 * written (PERIODIC) or dropped (SINGLE ignores it), an empty model stored as none.
 */
export function validateStrategyDraft(draft: StrategyDraft, timeZone: string): StrategyDraft {
  const name = checkText(draft.name, 'name', MAX_NAME_LENGTH);
  const title = checkText(draft.title, 'title', MAX_TITLE_LENGTH);
  if (!Number.isSafeInteger(draft.amount) || draft.amount <= 0 || draft.amount > MAX_STRATEGY_AMOUNT) {
    throw badInput('amount must be greater than 0 and at most 1000000000');
  }
  if (!Number.isInteger(draft.maxExecPerUser) || draft.maxExecPerUser < 0) {
    throw badInput(`maxExecPerUser must be 0 (unlimited) or more, got ${draft.maxExecPerUser}`);
  }
  if (draft.validityDays !== null) {
    if (!Number.isInteger(draft.validityDays) || draft.validityDays < 1) {
      throw badInput(`validityDays must be 1 or more (or null for the default expiry), got ${draft.validityDays}`);
    }
    if (draft.validityDays > MAX_VALIDITY_DAYS) {
      throw badInput(`validityDays must be at most ${MAX_VALIDITY_DAYS}, got ${draft.validityDays}`);
    }
  }
  let model = draft.model;
  if (model !== null) {
    if (model.trim() === '') model = null;
    else if (characterCount(model) > MAX_MODEL_LENGTH)
      throw badInput(`model must be at most ${MAX_MODEL_LENGTH} characters`);
  }
  const periodicExpr = draft.type === 'periodic' ? checkCron(draft.periodicExpr, timeZone) : null;
  assertValidCondition(draft.condition, timeZone);
  return { ...draft, name, title, model, periodicExpr };
}

/**
 * When a grant made at `now` expires (SPEC §4): `validityDays` → 23:59:59 on the day that many days
 * after the grant day; otherwise the configured default, end of next month or end of this month.
 * All in the configured zone.
 */
export function grantExpiry(now: Date, timeZone: string, validityDays: number | null, rule: DefaultExpiryRule): Date {
  if (validityDays !== null) return endOfDayAfter(now, timeZone, validityDays);
  return endOfMonth(now, timeZone, rule === 'end-of-month' ? 0 : 1);
}
