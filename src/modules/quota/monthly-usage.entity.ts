import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * A user's gateway `used` quota recorded at the monthly expiry for the month that just ended
 * (table `monthly_quota_usage`, SPEC §5, §12); unique per (user_id, year_month).
 */
@Entity({ tableName: 'monthly_quota_usage' })
export class MonthlyUsageRow {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Property({ type: 'text', fieldName: 'user_id' })
  userId!: string;

  /** `YYYY-MM` in the configured zone. */
  @Property({ type: 'string', columnType: 'char(7)', fieldName: 'year_month' })
  yearMonth!: string;

  @Property({ type: 'decimal', columnType: 'numeric(14,2)', fieldName: 'used_quota' })
  usedQuota!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'record_time' })
  recordTime!: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'create_time', defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
