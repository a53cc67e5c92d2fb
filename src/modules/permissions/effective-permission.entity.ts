import { Entity, ManyToOne, Property } from '@mikro-orm/core';
import { BaseEntity } from '../../db/base.entity.js';
import type { StoredSource } from './permission.enums.js';
import { ModelWhitelistSetting, QuotaCheckSetting, StarCheckSetting } from './permission-setting.entity.js';

/**
 * The effective value per employee (SPEC §6), keyed by the employee key, plus what the gateway was
 * last told about it (`notified_*`, null = never told; `notified_uncertain`: it may hold something
 * else): the push rules compare the two. Written by
 * permission-store.ts in SQL; the entities describe the tables for the ORM.
 */
abstract class EffectiveBase extends BaseEntity {
  @Property({ type: 'string', length: 200, fieldName: 'employee_number' })
  employeeNumber!: string;

  // CHECK (source in ('user', 'department', 'default')) lives in the migration (see permission-setting.entity.ts).
  @Property({ type: 'string', length: 20, default: 'default' })
  source!: StoredSource;

  /** The user key or department name the value came from; null for the default. */
  @Property({ type: 'string', length: 500, fieldName: 'source_identifier', nullable: true })
  sourceIdentifier!: string | null;

  /**
   * A push failed that may have landed (its answer was lost), so the gateway may hold something other
   * than `notified_*`: the record owes a push whatever its value until one lands.
   */
  @Property({ type: 'boolean', fieldName: 'notified_uncertain', default: false })
  notifiedUncertain!: boolean;
}

/** `effective_models` and `notified_models` hold names joined by ','. */
@Entity({ tableName: 'effective_permissions' })
export class EffectiveModelPermission extends EffectiveBase {
  @Property({
    type: 'string',
    length: 200,
    fieldName: 'employee_number',
    unique: 'effective_permissions_employee_number_key',
  })
  override employeeNumber!: string;

  @Property({ type: 'text', fieldName: 'effective_models', default: '' })
  effectiveModels!: string;

  @ManyToOne({
    entity: () => ModelWhitelistSetting,
    fieldName: 'whitelist_id',
    nullable: true,
    deleteRule: 'set null',
    updateRule: 'no action',
    foreignKeyName: 'effective_permissions_whitelist_id_fkey',
  })
  whitelist!: ModelWhitelistSetting | null;

  @Property({ type: 'text', fieldName: 'notified_models', nullable: true })
  notifiedModels!: string | null;
}

abstract class EffectiveSwitchBase extends EffectiveBase {
  @Property({ type: 'boolean', default: false })
  enabled!: boolean;

  @Property({ type: 'boolean', fieldName: 'notified_enabled', nullable: true })
  notifiedEnabled!: boolean | null;
}

@Entity({ tableName: 'effective_star_check_settings' })
export class EffectiveStarCheck extends EffectiveSwitchBase {
  @Property({
    type: 'string',
    length: 200,
    fieldName: 'employee_number',
    unique: 'effective_star_check_settings_employee_number_key',
  })
  override employeeNumber!: string;

  @ManyToOne({
    entity: () => StarCheckSetting,
    fieldName: 'setting_id',
    nullable: true,
    deleteRule: 'set null',
    updateRule: 'no action',
    foreignKeyName: 'effective_star_check_settings_setting_id_fkey',
  })
  setting!: StarCheckSetting | null;
}

@Entity({ tableName: 'effective_quota_check_settings' })
export class EffectiveQuotaCheck extends EffectiveSwitchBase {
  @Property({
    type: 'string',
    length: 200,
    fieldName: 'employee_number',
    unique: 'effective_quota_check_settings_employee_number_key',
  })
  override employeeNumber!: string;

  @ManyToOne({
    entity: () => QuotaCheckSetting,
    fieldName: 'setting_id',
    nullable: true,
    deleteRule: 'set null',
    updateRule: 'no action',
    foreignKeyName: 'effective_quota_check_settings_setting_id_fkey',
  })
  setting!: QuotaCheckSetting | null;
}
