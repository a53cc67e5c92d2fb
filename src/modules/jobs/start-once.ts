import type { EntityManager } from '../../db/orm.js';
import { DomainError, ErrorCode } from '../../errors.js';
import type { IdempotencyKeys, IdempotentCall, StoredAnswer } from '../idempotency/idempotency-keys.js';
import { JobRun } from './job-run.entity.js';
import type { PendingClaim } from './job-runner.js';

/** What a start attempt inside the key's transaction gives: the run to answer with, and how to launch it. */
export interface RunStart {
  run: JobRun;
  launch(): void;
}

/**
 * Starts a run at most once per idempotency key (runStrategy, triggerScan): the key and the run's
 * claim commit together, so a repeated or racing call with the key answers with the same run (as it
 * is now) and starts nothing. Callers look the key up first (`keys.lookup` + `replayedRun`), before
 * checks whose answer may have changed since the first call.
 */
export async function startRunOnce(
  keys: IdempotencyKeys,
  em: EntityManager,
  call: IdempotentCall,
  attempt: (transaction: EntityManager) => Promise<RunStart>,
): Promise<JobRun> {
  let launch: (() => void) | undefined;
  const run = await em.transactional(async (transaction) => {
    const claim = await keys.claim(transaction, call);
    if (!claim.claimed) return replayedRun(transaction, claim.answer);
    const started = await attempt(transaction);
    launch = started.launch;
    await keys.remember(transaction, call, { jobRunId: started.run.id });
    return started.run;
  });
  launch?.();
  return run;
}

/** A claim's run for the caller: the one started, or the active one it found. */
export function runOfClaim(pending: PendingClaim): RunStart | null {
  const { result } = pending;
  if (result.started) return { run: result.run, launch: pending.launch };
  return result.activeRun ? { run: result.activeRun, launch: () => {} } : null;
}

/** The run a key remembers, as it is now. */
export async function replayedRun(em: EntityManager, answer: StoredAnswer): Promise<JobRun> {
  const run = await em.findOne(JobRun, { id: String(answer.jobRunId) });
  if (!run) throw new DomainError(ErrorCode.NOT_FOUND, `job run ${String(answer.jobRunId)} no longer exists`);
  return run;
}
