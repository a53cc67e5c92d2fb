import { Entity, Property } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';

export type QuotaStatusName = 'VALID' | 'EXPIRED';

/**
 * One batch of a user's quota (table `quota`, SPEC §12): an amount that expires at one instant.
 * A user has at most one VALID batch per expiry (partial unique index); grants with the same expiry
 * add to it. The amount is numeric(14,2), read as a decimal string and converted to cents at the edge.
 * Written only through the Ledger (ledger.ts), which keeps the gateway total equal to Σ VALID.
 */
@Entity({ tableName: 'quota' })
export class QuotaBatchRow extends BaseEntity {
  @Property({ type: 'text', fieldName: 'user_id' })
  userId!: string;

  @Property({ type: 'decimal', columnType: 'numeric(14,2)' })
  amount!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'expiry_date' })
  expiryDate!: Date;

  @Property({ type: 'text', default: 'VALID' })
  status: QuotaStatusName = 'VALID';
}
