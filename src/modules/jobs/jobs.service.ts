import type { EntityManager } from '@mikro-orm/postgresql';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import { JobRun, type ScanTypeName } from './job-run.entity.js';
import type { JobHandler, JobRunner } from './job-runner.js';

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

  constructor(readonly runner: JobRunner) {}

  registerScan(type: ScanTypeName, definition: ScanDefinition): void {
    this.scans.set(type, definition);
  }

  async triggerScan(type: ScanTypeName, requestedBy: string): Promise<JobRun> {
    const scan = this.scans.get(type);
    if (!scan) throw new DomainError(ErrorCode.BAD_USER_INPUT, `${type} scans are not available on this server`);
    // The active run may finish between a lost claim and the look-up: try again a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await this.runner.start({
        type,
        jobKey: scan.jobKey,
        exclusive: true,
        trigger: 'MANUAL',
        requestedBy,
        handler: scan.handler,
      });
      if (result.started) return result.run;
      if (result.activeRun) return result.activeRun;
    }
    throw new DomainError(ErrorCode.CONFLICT, `could not start a ${type} scan; try again`);
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
