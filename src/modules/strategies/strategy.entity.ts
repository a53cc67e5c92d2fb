import { Entity, Property } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';

/** Stored values of `quota_strategy.type` (the old system's). */
export type StoredStrategyType = 'single' | 'periodic';

/**
 * A rule that grants quota to the users matching its condition (table `quota_strategy`, SPEC §4, §12).
 * `status` is the old column name for "enabled". The amount is numeric(14,2), read as a decimal string
 * and converted to cents at the edge.
 */
@Entity({ tableName: 'quota_strategy' })
export class QuotaStrategy extends BaseEntity {
  @Property({ type: 'text', unique: 'quota_strategy_name_key' })
  name!: string;

  @Property({ type: 'text' })
  title!: string;

  @Property({ type: 'text' })
  type!: StoredStrategyType;

  @Property({ type: 'decimal', columnType: 'numeric(14,2)' })
  amount!: string;

  @Property({ type: 'text', nullable: true })
  model?: string | null;

  /** The cron as the administrator wrote it (periodic only). */
  @Property({ type: 'text', fieldName: 'periodic_expr', nullable: true })
  periodicExpr?: string | null;

  @Property({ type: 'text' })
  condition!: string;

  /** Periodic only: most COMPLETED executions per user; 0 = unlimited. */
  @Property({ type: 'integer', fieldName: 'max_exec_per_user', default: 0 })
  maxExecPerUser: number = 0;

  /** Enabled. */
  @Property({ type: 'boolean', default: true })
  status: boolean = true;

  /** null = QUOTA_DEFAULT_EXPIRY. */
  @Property({ type: 'integer', fieldName: 'validity_days', nullable: true })
  validityDays?: number | null;
}
