import type { Cron } from 'croner';
import { parseCronPattern } from '../jobs/cron.js';

/**
 * `nextRunAt` of a page of strategies without parsing each cron pattern on every request: croner's
 * parse (it fills a 10,000-entry year table) and its walk to the next fire were a visible share of
 * `strategies(first: 20)` in the read bench's profile (issue 7).
 *
 * Each entry keeps the parsed pattern and the last answer with the instant it was computed from. That
 * answer is reused only while the caller's clock lies in [from, next): no fire falls in that window, so
 * the next fire after any instant in it is the same `next`. A clock at or past `next`, or set back
 * before `from` (the settable test clock), computes afresh. Patterns are parsed as everywhere else
 * (parseCronPattern, src/modules/jobs/cron.ts), so the answers equal `nextFireTimes`'.
 */

export const MAX_CACHED_PATTERNS = 1_000;

interface Entry {
  cron: Cron;
  /** The instant (ms) the last answer was computed from; NaN before the first. */
  from: number;
  /** The first fire strictly after `from` (ms), or null when the pattern fires no more. */
  next: number | null;
}

export class NextRunCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = MAX_CACHED_PATTERNS) {}

  /** Patterns held now (for tests). */
  get size(): number {
    return this.entries.size;
  }

  /** The first fire of `expression` strictly after `now`, in `timeZone`; throws when the pattern is invalid. */
  nextRun(expression: string, timeZone: string, now: Date): Date | null {
    const entry = this.entryFor(expression, timeZone);
    const at = now.getTime();
    if (!(at >= entry.from && (entry.next === null || at < entry.next))) {
      entry.from = at;
      entry.next = entry.cron.nextRuns(1, now)[0]?.getTime() ?? null;
    }
    return entry.next === null ? null : new Date(entry.next);
  }

  private entryFor(expression: string, timeZone: string): Entry {
    const key = `${expression}\u0000${timeZone}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const cron = parseCronPattern(expression, timeZone);
      // Oldest first out: a Map iterates in insertion order.
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      entry = { cron, from: Number.NaN, next: null };
      this.entries.set(key, entry);
    }
    return entry;
  }
}

/**
 * The one cache of the process: its answers depend only on the pattern, the zone and the instant
 * passed in, so instances with different clocks (tests run several apps in one process) can share it.
 */
export const nextRunCache = new NextRunCache();
