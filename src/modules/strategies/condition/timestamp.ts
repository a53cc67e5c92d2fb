import { zonedTimeToInstant } from '../../../clock.js';

/**
 * Timestamps in conditions (SPEC §3): `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD` are wall-clock times in
 * the configured zone (**Decision**: the old system read them as UTC); ISO-8601 with an offset
 * (`2025-01-01T08:00:00+08:00`, `…Z`, optional seconds and up to 3 fraction digits) names an instant.
 * Dates are checked against the calendar (2025-02-30 is refused). A wall time that a daylight-saving
 * change skips is moved forward by the gap, and one it repeats is the earlier instant (as
 * zonedTimeToInstant does): "2024-09-08" in America/Santiago is 01:00 that day, when the day begins.
 */
export type TimestampReading = { ok: true; instant: Date } | { ok: false; problem: string };

export const TIMESTAMP_FORMATS = '"YYYY-MM-DD HH:MM:SS", "YYYY-MM-DD" or ISO-8601 with an offset';

/** Years outside this range are refused: they are typos, and PostgreSQL and Date disagree beyond them. */
const MIN_YEAR = 1900;
const MAX_YEAR = 9999;

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
const ISO_WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)$/;

interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function readTimestamp(text: string, timeZone: string): TimestampReading {
  const dateOnly = DATE_ONLY.exec(text);
  if (dateOnly) return inZone(wallTime(dateOnly.slice(1, 4), ['0', '0', '0']), timeZone);
  const dateTime = DATE_TIME.exec(text);
  if (dateTime) return inZone(wallTime(dateTime.slice(1, 4), dateTime.slice(4, 7)), timeZone);
  const iso = ISO_WITH_OFFSET.exec(text);
  if (iso) return withOffset(iso);
  const hint = /^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(text)
    ? ' (an ISO-8601 time needs an offset such as +08:00 or Z)'
    : '';
  return { ok: false, problem: `expected ${TIMESTAMP_FORMATS}${hint}` };
}

function wallTime(date: string[], time: string[]): WallTime {
  const [year, month, day] = date.map(Number) as [number, number, number];
  const [hour, minute, second] = time.map(Number) as [number, number, number];
  return { year, month, day, hour, minute, second };
}

function inZone(wall: WallTime, timeZone: string): TimestampReading {
  const problem = calendarProblem(wall);
  if (problem) return { ok: false, problem };
  const { year, month, day, hour, minute, second } = wall;
  return { ok: true, instant: zonedTimeToInstant(timeZone, year, month, day, hour, minute, second) };
}

function withOffset(match: RegExpExecArray): TimestampReading {
  const [, year, month, day, hour, minute, second = '0', fraction = '', offset] = match;
  const wall = wallTime([year!, month!, day!], [hour!, minute!, second]);
  const problem = calendarProblem(wall);
  if (problem) return { ok: false, problem };
  if (fraction.length > 3) return { ok: false, problem: 'fractions of a second are limited to milliseconds' };
  const offsetMinutes = readOffsetMinutes(offset!);
  if (offsetMinutes === null) return { ok: false, problem: `the offset ${offset} is not a valid UTC offset` };
  const milliseconds = Number(fraction.padEnd(3, '0'));
  const utc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second, milliseconds);
  return { ok: true, instant: new Date(utc - offsetMinutes * 60_000) };
}

/** `Z`, `+08`, `+0800` or `+08:00`; hours up to 23, minutes up to 59. */
function readOffsetMinutes(offset: string): number | null {
  if (offset === 'Z') return 0;
  const sign = offset[0] === '-' ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
  if (hours > 23 || minutes > 59) return null;
  return sign * (hours * 60 + minutes);
}

const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function calendarProblem({ year, month, day, hour, minute, second }: WallTime): string | null {
  if (year < MIN_YEAR || year > MAX_YEAR) return `the year must be between ${MIN_YEAR} and ${MAX_YEAR}`;
  if (month < 1 || month > 12) return `there is no month ${month}`;
  if (day < 1 || day > daysInMonth(year, month)) return `${MONTH_NAMES[month - 1]} ${year} has no day ${day}`;
  if (hour > 23) return `there is no hour ${hour}`;
  if (minute > 59) return `there is no minute ${minute}`;
  if (second > 59) return `there is no second ${second}`;
  return null;
}
