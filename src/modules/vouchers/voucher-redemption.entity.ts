import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * A redeemed voucher (table `voucher_redemption`, SPEC §5, §12), created by the ledger migration.
 * The code is unique through an index on md5(voucher_code) (codes of up to 4096 characters are too
 * long for a plain btree entry), so a concurrent second redemption loses on the database.
 * `result` keeps the original TransferInResult as JSON, answered again as ALREADY_REDEEMED.
 */
@Entity({ tableName: 'voucher_redemption' })
export class VoucherRedemption {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Property({ type: 'text', fieldName: 'voucher_code' })
  voucherCode!: string;

  @Property({ type: 'text', fieldName: 'receiver_id' })
  receiverId!: string;

  @Property({ type: 'text', nullable: true })
  result?: string | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'create_time', defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
