import { Entity, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';
import type { StoredTargetType } from './permission.enums.js';

/**
 * Explicit settings (SPEC §6, §12): one row per (target_type, target_identifier). A user's
 * target_identifier is their employee key; a department's is its name.
 */
abstract class PermissionSettingBase extends BaseEntity {
  // CHECK (target_type in ('user', 'department')) lives in the migration: MikroORM names inherited checks after one table.
  @Property({ type: 'string', length: 20, fieldName: 'target_type' })
  targetType!: StoredTargetType;

  @Property({ type: 'string', length: 500, fieldName: 'target_identifier' })
  targetIdentifier!: string;
}

/** `allowed_models`: the names joined by ','; '' = an empty whitelist, which counts as "not configured". */
@Entity({ tableName: 'model_whitelist' })
@Unique({ name: 'idx_model_whitelist_unique', properties: ['targetType', 'targetIdentifier'] })
export class ModelWhitelistSetting extends PermissionSettingBase {
  @Property({ type: 'text', fieldName: 'allowed_models', default: '' })
  allowedModels!: string;
}

abstract class SwitchSettingBase extends PermissionSettingBase {
  @Property({ type: 'boolean', default: false })
  enabled!: boolean;
}

@Entity({ tableName: 'star_check_settings' })
@Unique({ name: 'idx_star_check_settings_unique', properties: ['targetType', 'targetIdentifier'] })
export class StarCheckSetting extends SwitchSettingBase {}

@Entity({ tableName: 'quota_check_settings' })
@Unique({ name: 'idx_quota_check_settings_unique', properties: ['targetType', 'targetIdentifier'] })
export class QuotaCheckSetting extends SwitchSettingBase {}
