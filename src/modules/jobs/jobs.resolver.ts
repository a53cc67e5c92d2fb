import {
  Arg,
  Authorized,
  Ctx,
  Field,
  ID,
  Int,
  Mutation,
  ObjectType,
  Query,
  Resolver,
  registerEnumType,
} from 'type-graphql';
import { Role, viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { DateTimeScalar } from '../../graphql/scalars.js';
import { IDEMPOTENCY_KEY_DESCRIPTION } from '../idempotency/idempotency.graphql.js';
import { readIdempotencyKey } from '../idempotency/idempotency-keys.js';
import type { JobRun } from './job-run.entity.js';

export enum ScanType {
  STRATEGY = 'STRATEGY',
  EMPLOYEE_SYNC = 'EMPLOYEE_SYNC',
  EXPIRE_QUOTAS = 'EXPIRE_QUOTAS',
  SYNC_QUOTAS = 'SYNC_QUOTAS',
}
registerEnumType(ScanType, { name: 'ScanType' });

export enum JobStatus {
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
}
registerEnumType(JobStatus, { name: 'JobStatus' });

@ObjectType('JobRun')
export class JobRunObject {
  @Field(() => ID)
  id!: string;

  @Field(() => ScanType)
  type!: ScanType;

  @Field(() => JobStatus)
  status!: JobStatus;

  @Field(() => DateTimeScalar, { nullable: true })
  startedAt!: Date | null;

  @Field(() => DateTimeScalar, { nullable: true })
  finishedAt!: Date | null;

  @Field(() => Int, { description: 'users / employees / batches handled so far' })
  processed!: number;

  @Field(() => Int)
  succeeded!: number;

  @Field(() => Int)
  failed!: number;

  @Field(() => String, { nullable: true, description: 'why the run failed; starts with the error code' })
  error!: string | null;
}

export function toJobRunObject(run: JobRun): JobRunObject {
  return {
    id: String(run.id),
    type: run.type as ScanType,
    status: run.status as JobStatus,
    startedAt: run.startedAt ?? null,
    finishedAt: run.finishedAt ?? null,
    processed: run.processed,
    succeeded: run.succeeded,
    failed: run.failed,
    error: run.error ?? null,
  };
}

@Resolver()
export class JobsResolver {
  @Authorized(Role.ADMIN)
  @Query(() => JobRunObject, { nullable: true, description: 'null when there is no such run' })
  async jobRun(@Arg('id', () => ID) id: string, @Ctx() context: RequestContext): Promise<JobRunObject | null> {
    const run = await context.services.jobs.jobRun(context.em, id);
    return run ? toJobRunObject(run) : null;
  }

  @Authorized(Role.ADMIN)
  @Query(() => [JobRunObject], { description: 'newest first' })
  async jobRuns(
    @Arg('type', () => ScanType, { nullable: true }) type: ScanType | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 20 }) first: number | null,
    @Ctx() context: RequestContext,
  ): Promise<JobRunObject[]> {
    return (await context.services.jobs.jobRuns(context.em, type, first ?? 20)).map(toJobRunObject);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => JobRunObject, {
    description: 'starts a scan now and returns its run at once; a scan already running is returned instead',
  })
  async triggerScan(
    @Arg('type', () => ScanType) type: ScanType,
    @Arg('idempotencyKey', () => String, { nullable: true, description: IDEMPOTENCY_KEY_DESCRIPTION })
    idempotencyKey: string | null,
    @Ctx() context: RequestContext,
  ): Promise<JobRunObject> {
    const key = readIdempotencyKey(idempotencyKey);
    const idempotency = key === undefined ? undefined : { em: context.em, key };
    return toJobRunObject(await context.services.jobs.triggerScan(type, viewerOf(context).userId, idempotency));
  }
}
