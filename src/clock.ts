/**
 * The one clock of the server. Every calendar rule (expiry dates, month boundaries, batch numbers)
 * goes through here, in the configured IANA zone, never the host's. Tests pass a SettableClock to
 * run any rule at any date without sleeping.
 */
export interface Clock {
  now(): Date;
  readonly timeZone: string;
}

export class SystemClock implements Clock {
  constructor(readonly timeZone: string) {}
  now(): Date {
    return new Date();
  }
}

export class SettableClock implements Clock {
  private current: Date;
  constructor(
    readonly timeZone: string,
    start: Date | string = new Date(),
  ) {
    this.current = new Date(start);
  }
  now(): Date {
    return new Date(this.current);
  }
  set(instant: Date | string): void {
    this.current = new Date(instant);
  }
  advance(milliseconds: number): void {
    this.current = new Date(this.current.getTime() + milliseconds);
  }
}

/** Wall-clock parts of an instant in a zone. month is 1-12. */
export interface ZonedParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

export function zonedParts(instant: Date, timeZone: string): ZonedParts {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(instant)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
  };
}

/** Offset of the zone from UTC at an instant, in milliseconds. */
function offsetAt(instant: Date, timeZone: string): number {
  const p = zonedParts(instant, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(instant.getTime() / 1000) * 1000;
}

const DAY_MS = 86_400_000;

/**
 * The instant at which the wall clock in `timeZone` shows the given time. Month and day may
 * overflow (month 13, day 0) the way Date.UTC allows, which makes "last day of next month" simple.
 * Resolved as Temporal's "compatible" disambiguation: in an overlap (clocks set back) the earlier of
 * the two instants; in a gap (clocks set forward: the wall time never happens) the time moved
 * forward by the gap's length — e.g. midnight on a day whose clocks jump 00:00 → 01:00 is 01:00 that
 * day, never 23:00 the day before. Offsets are read a day either side: zones change them at most
 * once in that span.
 */
export function zonedTimeToInstant(
  timeZone: string,
  year: number,
  month: number,
  day: number,
  hour = 0,
  minute = 0,
  second = 0,
): Date {
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const offsetBefore = offsetAt(new Date(wall - DAY_MS), timeZone);
  const offsetAfter = offsetAt(new Date(wall + DAY_MS), timeZone);
  // An offset is right for the wall time when the instant it gives shows that wall time.
  const candidates = [...new Set([offsetBefore, offsetAfter])]
    .map((offset) => wall - offset)
    .filter((instant) => instant + offsetAt(new Date(instant), timeZone) === wall);
  if (candidates.length > 0) return new Date(Math.min(...candidates));
  // In the gap: the offset from before the change, which lands as far past the gap as the wall time was into it.
  return new Date(wall - offsetBefore);
}

const pad = (value: number, width = 2) => String(value).padStart(width, '0');

/** 23:59:59 on the last day of the month `monthsAhead` after the instant's month. */
export function endOfMonth(instant: Date, timeZone: string, monthsAhead = 0): Date {
  const p = zonedParts(instant, timeZone);
  // Day 0 of month m+1 is the last day of month m.
  return zonedTimeToInstant(timeZone, p.year, p.month + monthsAhead + 1, 0, 23, 59, 59);
}

/** 23:59:59 on the day `days` days after the instant's day. */
export function endOfDayAfter(instant: Date, timeZone: string, days: number): Date {
  const p = zonedParts(instant, timeZone);
  return zonedTimeToInstant(timeZone, p.year, p.month, p.day + days, 23, 59, 59);
}

/** 00:00:00 on day 1 of the instant's month. */
export function startOfMonth(instant: Date, timeZone: string): Date {
  const p = zonedParts(instant, timeZone);
  return zonedTimeToInstant(timeZone, p.year, p.month, 1);
}

/** `YYYY-MM` of the month before the instant's month. */
export function previousYearMonth(instant: Date, timeZone: string): string {
  const p = zonedParts(instant, timeZone);
  const month = p.month === 1 ? 12 : p.month - 1;
  const year = p.month === 1 ? p.year - 1 : p.year;
  return `${year}-${pad(month)}`;
}

/** `YYYYMMDDHHMMSS` in the zone: the batch number of a strategy run. */
export function batchNumber(instant: Date, timeZone: string): string {
  const p = zonedParts(instant, timeZone);
  return `${p.year}${pad(p.month)}${pad(p.day)}${pad(p.hour)}${pad(p.minute)}${pad(p.second)}`;
}

/** ISO-8601 with the zone's offset, e.g. 2026-12-31T23:59:59+08:00 (the voucher's expiry format). */
export function formatZoned(instant: Date, timeZone: string): string {
  const p = zonedParts(instant, timeZone);
  const offsetMinutes = Math.round(offsetAt(instant, timeZone) / 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}
