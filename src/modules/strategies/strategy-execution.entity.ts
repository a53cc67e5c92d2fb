import { Entity, Property } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';

/** Stored values of `quota_execute.status` (the old system's). */
export type StoredExecutionStatus = 'processing' | 'completed' | 'failed';

/**
 * One user's grant by one run of a strategy (table `quota_execute`, SPEC §4, §12). Claimed as
 * `processing` before the grant, `completed` in the grant's own transaction, `failed` with the error
 * otherwise. Written with SQL by the execution engine (see strategy-executor.ts); read through here.
 */
@Entity({ tableName: 'quota_execute' })
export class QuotaExecution extends BaseEntity {
  @Property({ type: 'bigint', fieldName: 'strategy_id' })
  strategyId!: string;

  @Property({ type: 'text', fieldName: 'user_id' })
  userId!: string;

  /** `YYYYMMDDHHMMSS` of the run's start in the configured zone. */
  @Property({ type: 'text', fieldName: 'batch_number' })
  batchNumber!: string;

  @Property({ type: 'text' })
  status!: StoredExecutionStatus;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'expiry_date' })
  expiryDate!: Date;

  @Property({ type: 'decimal', columnType: 'numeric(14,2)' })
  amount!: string;

  @Property({ type: 'text', nullable: true })
  error?: string | null;

  /** The fire this grant belongs to: `at:<scheduled instant>` or `run:<job run id>`. */
  @Property({ type: 'text', fieldName: 'fire_key' })
  fireKey!: string;

  @Property({ type: 'bigint', fieldName: 'job_run_id', nullable: true })
  jobRunId?: string | null;

  /** A copy of the strategy's type, for the unique index that keeps single strategies to one grant per user. */
  @Property({ type: 'boolean' })
  single!: boolean;
}
