import type { EntityManager } from '../../db/orm.js';

/**
 * Progress callbacks of a ledger job, shaped like the job runner's JobProgress so a JobExecution's
 * `progress` can be passed straight in.
 */
export interface LedgerJobProgress {
  processed(count?: number): void;
  succeeded(count?: number): void;
  failed(count?: number): void;
}

export interface LedgerJobCounters {
  processed: number;
  succeeded: number;
  failed: number;
  /** Up to MAX_REPORTED_FAILURES users that failed, with why (for the JobRun's error and logs). */
  failures: { userId: string; reason: string }[];
}

export const MAX_REPORTED_FAILURES = 50;
export const DEFAULT_CHUNK_SIZE = 200;

/** Counters plus the optional progress callbacks, updated together. */
export class LedgerJobTally {
  readonly counters: LedgerJobCounters = { processed: 0, succeeded: 0, failed: 0, failures: [] };

  constructor(private readonly progress?: LedgerJobProgress) {}

  succeeded(): void {
    this.counters.processed += 1;
    this.counters.succeeded += 1;
    this.progress?.processed(1);
    this.progress?.succeeded(1);
  }

  failed(userId: string, reason: string): void {
    this.counters.processed += 1;
    this.counters.failed += 1;
    if (this.counters.failures.length < MAX_REPORTED_FAILURES) this.counters.failures.push({ userId, reason });
    this.progress?.processed(1);
    this.progress?.failed(1);
  }
}

/**
 * Walks users in chunks by keyset (user_id > last seen), so a job never holds every user in memory
 * and users added behind the cursor during the run are simply left for the next run. `select` must
 * return rows with a `user_id` for `user_id > ?` ordered by user_id and `limit ?`; those two are the
 * last parameters, after `leadingParams`.
 */
export async function* userRowsInChunks<Row extends { user_id: string }>(
  em: EntityManager,
  select: string,
  leadingParams: unknown[] = [],
  chunkSize = DEFAULT_CHUNK_SIZE,
): AsyncGenerator<Row[]> {
  let after = '';
  for (;;) {
    const rows = await em.execute<Row[]>(select, [...leadingParams, after, chunkSize]);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < chunkSize) return;
    after = rows.at(-1)!.user_id;
  }
}

export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs `work` for every item, at most `limit` at a time (gateway calls of a chunk of users: enough in
 * flight to hide the round trips, few enough not to swamp the gateway). `work` handles its own errors.
 */
export async function forEachConcurrently<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}
