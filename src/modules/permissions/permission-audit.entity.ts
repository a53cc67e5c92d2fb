import { Entity, Index, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * One row per setting change and per recompute (SPEC §6). `details` is JSON text (the old system's
 * column): before/after, the acting user, and whether the gateway was notified.
 */
@Entity({ tableName: 'permission_audit' })
export class PermissionAuditEntry {
  @PrimaryKey({ type: 'bigint', autoincrement: true })
  id!: string;

  @Index({ name: 'idx_permission_audit_operation' })
  @Property({ type: 'string', length: 50 })
  operation!: string;

  @Property({ type: 'string', length: 20, fieldName: 'target_type', nullable: true })
  targetType!: string | null;

  @Index({ name: 'idx_permission_audit_target_identifier' })
  @Property({ type: 'string', length: 500, fieldName: 'target_identifier', nullable: true })
  targetIdentifier!: string | null;

  @Property({ type: 'text', nullable: true })
  details!: string | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'create_time', defaultRaw: 'now()' })
  createdAt: Date = new Date();
}
