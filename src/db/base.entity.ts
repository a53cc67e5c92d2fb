import { PrimaryKey, Property } from '@mikro-orm/core';

/**
 * The columns every ledger table of the old system has: a serial id and create/update times
 * (old column names, SPEC §12). Times are timestamptz.
 */
export abstract class BaseEntity {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Property({ type: 'datetime', fieldName: 'create_time', columnType: 'timestamptz', defaultRaw: 'now()' })
  createdAt: Date = new Date();

  @Property({
    type: 'datetime',
    fieldName: 'update_time',
    columnType: 'timestamptz',
    defaultRaw: 'now()',
    onUpdate: () => new Date(),
  })
  updatedAt: Date = new Date();
}
