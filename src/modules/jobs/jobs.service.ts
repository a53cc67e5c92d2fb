import type { EntityManager } from '@mikro-orm/postgresql';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import type { IdempotencyKeys } from '../idempotency/idempotency-keys.js';
import { JobRun, type ScanTypeName } from './job-run.entity.js';
import type { JobHandler, JobRequest, JobRunner } from './job-runner.js';
import { type RunStart, replayedRun, runOfClaim, startRunOnce } from './start-once.js';

/** What `triggerScan(type)` runs for each type; modules register theirs at start (src/app.ts). */
export interface ScanDefinition {
  jobKey: string;
  handler: JobHandler;
}

/**
 * triggerScan / jobRun / jobRuns (SPEC §9). Manual triggers return the run at once and the work
 * goes on; a type already running returns that run instead of starting another.
 */
export class JobsService {
  private readonly scans = new Map<ScanTypeName, ScanDefinition>();

  constructor(
    readonly runner: JobRunner,
    private readonly keys: IdempotencyKeys,
  ) {}

  registerScan(type: ScanTypeName, definition: ScanDefinition): void {
    this.scans.set(type, definition);
  }

  /**
   * Starts the scan, or answers with the run of that type already active. With an idempotency key the
   * same key answers with the same run afterwards, whatever runs by then.
   */
  async triggerScan(
    type: ScanTypeName,
    requestedBy: string,
    idempotency?: { em: EntityManager; key: string },
  ): Promise<JobRun> {
    const scan = this.scans.get(type);
    if (!scan) throw new DomainError(ErrorCode.BAD_USER_INPUT, `${type} scans are not available on this server`);
    const request: JobRequest = {
      type,
      jobKey: scan.jobKey,
      exclusive: true,
      trigger: 'MANUAL',
      requestedBy,
      handler: scan.handler,
    };
    const attempt = async (transaction: EntityManager): Promise<RunStart> => {
      // The active run may finish between a lost claim and the look-up: try again a few times.
      for (let tries = 0; tries < 5; tries++) {
        const start = runOfClaim(await this.runner.claimWithin(transaction, request));
        if (start) return start;
      }
      throw new DomainError(ErrorCode.CONFLICT, `could not start a ${type} scan; try again`);
    };
    if (!idempotency) {
      const start = await attempt(this.runner.forkEntityManager());
      start.launch();
      return start.run;
    }
    const call = { operation: 'triggerScan', principal: requestedBy, key: idempotency.key, request: { type } } as const;
    const earlier = await this.keys.lookup(idempotency.em, call);
    if (earlier) return replayedRun(idempotency.em, earlier);
    return startRunOnce(this.keys, idempotency.em, call, attempt);
  }

  async jobRun(em: EntityManager, id: string): Promise<JobRun | null> {
    if (!/^\d{1,18}$/.test(id)) return null;
    return em.findOne(JobRun, { id });
  }

  async jobRuns(em: EntityManager, type: ScanTypeName | null | undefined, first: number): Promise<JobRun[]> {
    if (!Number.isInteger(first) || first < 1 || first > 100)
      throw badInput(`first must be between 1 and 100, got ${first}`);
    return em.find(JobRun, type ? { type } : {}, { orderBy: { createdAt: 'desc', id: 'desc' }, limit: first });
  }
}
