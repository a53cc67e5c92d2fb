import { badInput } from '../../errors.js';
import { type EmployeeRef, MAX_IDENTIFIER_LENGTH } from '../employees/employee-directory.js';
import { WhitelistAction } from './permission.enums.js';

/** SPEC §6 limits of a model whitelist. */
export const MAX_MODELS = 50;
export const MAX_MODEL_NAME_LENGTH = 100;

function hasControlCharacter(name: string): boolean {
  for (const character of name) {
    const code = character.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** What a setting is about, as given (a user is resolved to their employee key later). */
export type TargetInput = { type: 'user'; ref: EmployeeRef } | { type: 'department'; name: string };

/** Exactly one of `user` / `departmentName` (SPEC §6); anything else is BAD_USER_INPUT. */
export function parseTarget(
  user: EmployeeRef | null | undefined,
  departmentName: string | null | undefined,
): TargetInput {
  const hasUser = user !== null && user !== undefined;
  const hasDepartment = departmentName !== null && departmentName !== undefined;
  if (hasUser === hasDepartment) throw badInput('Give exactly one of user and departmentName.');
  if (hasUser)
    return { type: 'user', ref: { userId: user.userId ?? null, employeeNumber: user.employeeNumber ?? null } };
  const name = (departmentName as string).trim();
  if (name === '') throw badInput('departmentName must not be empty');
  if (name.length > MAX_IDENTIFIER_LENGTH) {
    throw badInput(`departmentName must be at most ${MAX_IDENTIFIER_LENGTH} characters, got ${name.length}`);
  }
  return { type: 'department', name };
}

/**
 * Trimmed, each 1–100 characters without commas (the gateway and the old columns join names with
 * ','), at most 50; repeated names are kept once, in first-seen order.
 */
export function normalizeModelNames(names: readonly string[]): string[] {
  if (names.length > MAX_MODELS) throw badInput(`models may list at most ${MAX_MODELS} names, got ${names.length}`);
  const result: string[] = [];
  names.forEach((raw, index) => {
    const name = raw.trim();
    if (name === '') throw badInput(`models[${index}] is empty`);
    if (name.length > MAX_MODEL_NAME_LENGTH) {
      throw badInput(`models[${index}] is longer than ${MAX_MODEL_NAME_LENGTH} characters`);
    }
    if (name.includes(',')) throw badInput(`models[${index}] contains a comma, which model names cannot have`);
    if (hasControlCharacter(name)) throw badInput(`models[${index}] contains a control character`);
    if (!result.includes(name)) result.push(name);
  });
  return result;
}

/** SET replaces, ADD appends the missing names, REMOVE drops names; order is kept. */
export function applyWhitelistAction(current: readonly string[], action: WhitelistAction, names: readonly string[]) {
  let next: string[];
  switch (action) {
    case WhitelistAction.SET:
      next = [...names];
      break;
    case WhitelistAction.ADD:
      next = [...current, ...names.filter((name) => !current.includes(name))];
      break;
    case WhitelistAction.REMOVE:
      next = current.filter((name) => !names.includes(name));
      break;
    default:
      throw badInput(`unknown whitelist action ${String(action)}`);
  }
  if (next.length > MAX_MODELS) {
    throw badInput(`the whitelist would hold ${next.length} models; at most ${MAX_MODELS} are allowed`);
  }
  return next;
}
