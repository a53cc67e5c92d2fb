import { Cron } from 'croner';

/** How every pattern is read: in the configured zone, five fields (seconds = 0) or six (seconds first). */
function cronOptions(timeZone: string) {
  return { timezone: timeZone, mode: '5-or-6-parts' } as const;
}

/**
 * A parsed pattern and nothing more: paused and without a function, the Cron has no timer, so it needs
 * no stop. Throws croner's error for an invalid pattern.
 */
export function parseCronPattern(expression: string, timeZone: string): Cron {
  return new Cron(expression.trim(), { ...cronOptions(timeZone), paused: true });
}

/** The descriptors SPEC §4 allows; croner knows a few more (e.g. @reboot) that make no sense here. */
const DESCRIPTORS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);

/**
 * Checks a cron expression against the rules of SPEC §4: six fields with seconds, five fields
 * (seconds = 0) or one of the descriptors. Returns the reason when it is not valid, null otherwise.
 */
export function cronProblem(expression: string, timeZone: string): string | null {
  const trimmed = expression.trim();
  if (trimmed === '') return 'the expression is empty';
  if (trimmed.startsWith('@')) {
    return DESCRIPTORS.has(trimmed.toLowerCase())
      ? null
      : `unknown descriptor "${trimmed}" (allowed: ${[...DESCRIPTORS].join(', ')})`;
  }
  const fields = trimmed.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `expected 5 or 6 fields (seconds first), got ${fields}`;
  try {
    parseCronPattern(trimmed, timeZone);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Creates a croner job for a validated expression in the configured zone. */
export function createCronJob(expression: string, timeZone: string, run: (job: Cron) => Promise<void> | void): Cron {
  return new Cron(expression.trim(), { ...cronOptions(timeZone), protect: true }, (job: Cron) => run(job));
}

/**
 * The scheduled instant of the fire that is running now: the latest fire time at or before `now`.
 * Croner calls back at (or after) that instant, and a busy event loop can make "after" more than a
 * second; every instance must still name the same fire, so the key is the schedule's, not the clock's.
 */
export function scheduledInstant(job: Cron, now = new Date()): Date {
  return job.previousRuns(1, new Date(now.getTime() + 1))[0] ?? new Date(Math.floor(now.getTime() / 1000) * 1000);
}

/** The next `count` fire times of an expression, in the configured zone. */
export function nextFireTimes(expression: string, timeZone: string, count: number, from?: Date): Date[] {
  return parseCronPattern(expression, timeZone).nextRuns(count, from);
}
