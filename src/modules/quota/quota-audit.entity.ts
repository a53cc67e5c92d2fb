import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

export type AuditOperationName = 'RECHARGE' | 'TRANSFER_IN' | 'TRANSFER_OUT' | 'EXPIRE' | 'DEDUCT';

/**
 * One change of a user's ledger (table `quota_audit`, SPEC §5, §12). Every change to a batch writes
 * exactly one row, so Σ amount of a user's audits = Σ of their VALID batches. `details` is JSON text
 * shaped like the contract's AuditDetails. `reason`, `reference` and `actor` are additions to the old
 * columns; a DEDUCT reference is unique (partial index), which makes deductions idempotent.
 */
@Entity({ tableName: 'quota_audit' })
export class QuotaAuditRow {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Property({ type: 'text', fieldName: 'user_id' })
  userId!: string;

  /** Signed: + RECHARGE/TRANSFER_IN, − TRANSFER_OUT/EXPIRE/DEDUCT. */
  @Property({ type: 'decimal', columnType: 'numeric(14,2)' })
  amount!: string;

  @Property({ type: 'text' })
  operation!: AuditOperationName;

  @Property({ type: 'text', fieldName: 'voucher_code', nullable: true })
  voucherCode?: string | null;

  @Property({ type: 'text', fieldName: 'related_user', nullable: true })
  relatedUser?: string | null;

  @Property({ type: 'bigint', fieldName: 'strategy_id', nullable: true })
  strategyId?: string | null;

  @Property({ type: 'text', fieldName: 'strategy_name', nullable: true })
  strategyName?: string | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'expiry_date' })
  expiryDate!: Date;

  @Property({ type: 'text', nullable: true })
  details?: string | null;

  @Property({ type: 'text', nullable: true })
  reason?: string | null;

  @Property({ type: 'text', nullable: true })
  reference?: string | null;

  /** Who made the change: an admin's user id, `strategy:<id>`, `job:expire`, … */
  @Property({ type: 'text', nullable: true })
  actor?: string | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'create_time', defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
