import { unstorableText } from '../../graphql/text-input.js';
import { HrPayloadError } from './hr-crypto.js';

/**
 * Strict readers of the decrypted HR feeds (SPEC §7). A feed that is not what we expect is refused
 * whole: a sync must never act on half-understood data (it could remove employees).
 *
 * employees:   [{ badge, Name, DepID, email, TEL }]
 * departments: [{ Id, AdminId (0 = root), Name, DepGrade, DepartmentStatus }]
 * `DepID` and `Id` are numeric strings and `AdminId` a number; a number where a numeric string is
 * expected (or the reverse) is accepted, since both say the same thing.
 */

export interface HrEmployee {
  /** The employee number. */
  badge: string;
  name: string;
  /** The department id; null when the feed gives none (the employee is then skipped, like an unknown id). */
  depId: string | null;
}

export interface HrDepartment {
  id: string;
  /** '0' = root. */
  parentId: string;
  name: string;
}

export const MAX_BADGE_LENGTH = 100;
export const MAX_NAME_LENGTH = 200;

function parseJsonArray(text: string, feed: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HrPayloadError(`the ${feed} feed is not JSON`);
  }
  if (!Array.isArray(parsed)) throw new HrPayloadError(`the ${feed} feed is not a JSON array`);
  return parsed;
}

function field(item: unknown, index: number, feed: string): Record<string, unknown> {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    throw new HrPayloadError(`${feed}[${index}] is not an object`);
  }
  return item as Record<string, unknown>;
}

/** A numeric id given as a string of digits or a non-negative integer; null/'' when `optional`. */
function readId(value: unknown, where: string, optional: boolean): string | null {
  if (optional && (value === undefined || value === null || value === '')) return null;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'string' && /^\d{1,18}$/.test(value.trim())) {
    // Canonical form, so "007" and 7 name the same department.
    return String(BigInt(value.trim()));
  }
  throw new HrPayloadError(`${where} must be a numeric id, got ${describe(value)}`);
}

function readText(value: unknown, where: string, maxLength: number, allowEmpty: boolean): string {
  if (typeof value !== 'string') throw new HrPayloadError(`${where} must be a string, got ${describe(value)}`);
  const text = value.trim();
  if (!allowEmpty && text === '') throw new HrPayloadError(`${where} must not be empty`);
  if (text.length > maxLength) throw new HrPayloadError(`${where} is longer than ${maxLength} characters`);
  // PostgreSQL would refuse it when the mirror is written, failing the sync with the whole feed in the
  // driver's error (personal data in the log) and no word of which record it was.
  const problem = unstorableText(text);
  if (problem) throw new HrPayloadError(`${where} contains ${problem}`);
  return text;
}

function checkOptionalText(value: unknown, where: string): void {
  if (value !== undefined && value !== null && typeof value !== 'string' && typeof value !== 'number') {
    throw new HrPayloadError(`${where} must be a string, got ${describe(value)}`);
  }
}

/** Names the JSON type only: payload values may be personal data and never go into a message. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.trim() === '' ? 'an empty string' : 'a non-numeric string';
  return `a ${typeof value}`;
}

export function parseEmployees(text: string): HrEmployee[] {
  return parseJsonArray(text, 'employees').map((item, index) => {
    const record = field(item, index, 'employees');
    const where = `employees[${index}]`;
    checkOptionalText(record.email, `${where}.email`);
    checkOptionalText(record.TEL, `${where}.TEL`);
    return {
      badge: readText(record.badge, `${where}.badge`, MAX_BADGE_LENGTH, false),
      name: readText(record.Name, `${where}.Name`, MAX_NAME_LENGTH, true),
      depId: readId(record.DepID, `${where}.DepID`, true),
    };
  });
}

export function parseDepartments(text: string): HrDepartment[] {
  const seen = new Set<string>();
  return parseJsonArray(text, 'departments').map((item, index) => {
    const record = field(item, index, 'departments');
    const where = `departments[${index}]`;
    const id = readId(record.Id, `${where}.Id`, false) as string;
    if (seen.has(id)) throw new HrPayloadError(`${where}.Id ${id} appears twice`);
    seen.add(id);
    return {
      id,
      parentId: readId(record.AdminId, `${where}.AdminId`, false) as string,
      name: readText(record.Name, `${where}.Name`, MAX_NAME_LENGTH, false),
    };
  });
}
