import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

export type ScanTypeName = 'STRATEGY' | 'EMPLOYEE_SYNC' | 'EXPIRE_QUOTAS' | 'SYNC_QUOTAS';
export type JobStatusName = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';
export type JobTrigger = 'SCHEDULE' | 'MANUAL' | 'STARTUP';

/** One run of a job (SPEC §9). Claimed through unique indexes; see the jobs migration. */
@Entity({ tableName: 'job_run' })
export class JobRun {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Property({ type: 'text' })
  type!: ScanTypeName;

  /** Which job: 'scan', 'strategy:<id>', 'expire', 'employee-sync', 'sync-quotas'. */
  @Property({ type: 'text', fieldName: 'job_key' })
  jobKey!: string;

  /** Exclusive runs never overlap another active run of the same job key. */
  @Property({ type: 'boolean', default: true })
  exclusive: boolean = true;

  /** `<jobKey>@<scheduled instant>` for scheduled fires: one row per fire, across instances. */
  @Property({ type: 'text', fieldName: 'fire_key', nullable: true })
  fireKey?: string | null;

  @Property({ type: 'text' })
  trigger!: JobTrigger;

  @Property({ type: 'bigint', fieldName: 'strategy_id', nullable: true })
  strategyId?: string | null;

  @Property({ type: 'text' })
  status!: JobStatusName;

  @Property({ type: 'integer', default: 0 })
  processed: number = 0;

  @Property({ type: 'integer', default: 0 })
  succeeded: number = 0;

  @Property({ type: 'integer', default: 0 })
  failed: number = 0;

  @Property({ type: 'text', nullable: true })
  error?: string | null;

  @Property({ type: 'text', fieldName: 'requested_by', nullable: true })
  requestedBy?: string | null;

  @Property({ type: 'text', fieldName: 'instance_id', nullable: true })
  instanceId?: string | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'heartbeat_at', nullable: true })
  heartbeatAt?: Date | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'started_at', nullable: true })
  startedAt?: Date | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'finished_at', nullable: true })
  finishedAt?: Date | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'create_time', defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
