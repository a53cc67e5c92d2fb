import { Migration } from '@mikro-orm/migrations';

/**
 * Permissions (SPEC §6, §12): explicit settings per user or department (model whitelist, star check,
 * quota check), the effective value per employee, and the permission audit. Table and column names
 * are the old system's, so its tables can be copied or adopted in place (`if not exists` everywhere);
 * the columns it did not have are additions:
 * - effective_*: `source`, `source_identifier` (where the value came from) and `notified_models` /
 *   `notified_enabled` — what the gateway was last told (null = never told), which drive the push
 *   rules.
 */
export class Migration20261123120000_permissions extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table if not exists "model_whitelist" (
        "id" bigserial primary key,
        "target_type" varchar(20) not null check ("target_type" in ('user', 'department')),
        "target_identifier" varchar(500) not null,
        "allowed_models" text not null default '',
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    this.addSql(`create unique index if not exists "idx_model_whitelist_unique"
      on "model_whitelist" ("target_type", "target_identifier");`);

    for (const table of ['star_check_settings', 'quota_check_settings']) {
      this.addSql(`
        create table if not exists "${table}" (
          "id" bigserial primary key,
          "target_type" varchar(20) not null check ("target_type" in ('user', 'department')),
          "target_identifier" varchar(500) not null,
          "enabled" boolean not null default false,
          "create_time" timestamptz not null default now(),
          "update_time" timestamptz not null default now()
        );`);
      this.addSql(`create unique index if not exists "idx_${table}_unique"
        on "${table}" ("target_type", "target_identifier");`);
    }

    this.addSql(`
      create table if not exists "effective_permissions" (
        "id" bigserial primary key,
        "employee_number" varchar(200) not null unique,
        "effective_models" text not null default '',
        "whitelist_id" bigint null references "model_whitelist" ("id") on delete set null,
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    this.addEffectiveAdditions('effective_permissions', '"notified_models" text null');

    for (const [table, settings] of [
      ['effective_star_check_settings', 'star_check_settings'],
      ['effective_quota_check_settings', 'quota_check_settings'],
    ] as const) {
      this.addSql(`
        create table if not exists "${table}" (
          "id" bigserial primary key,
          "employee_number" varchar(200) not null unique,
          "enabled" boolean not null default false,
          "setting_id" bigint null references "${settings}" ("id") on delete set null,
          "create_time" timestamptz not null default now(),
          "update_time" timestamptz not null default now()
        );`);
      this.addEffectiveAdditions(table, '"notified_enabled" boolean null');
    }

    this.addSql(`
      create table if not exists "permission_audit" (
        "id" bigserial primary key,
        "operation" varchar(50) not null,
        "target_type" varchar(20) null,
        "target_identifier" varchar(500) null,
        "details" text null,
        "create_time" timestamptz not null default now()
      );`);
    this.addSql(
      'create index if not exists "idx_permission_audit_target_identifier" on "permission_audit" ("target_identifier");',
    );
    this.addSql('create index if not exists "idx_permission_audit_operation" on "permission_audit" ("operation");');
  }

  /** The columns the old system did not have; added separately so an adopted table gets them too. */
  private addEffectiveAdditions(table: string, notifiedColumn: string): void {
    this.addSql(`alter table "${table}"
      add column if not exists "source" varchar(20) not null default 'default'
        check ("source" in ('user', 'department', 'default')),
      add column if not exists "source_identifier" varchar(500) null,
      add column if not exists ${notifiedColumn};`);
  }

  override async down(): Promise<void> {
    for (const table of [
      'permission_audit',
      'effective_quota_check_settings',
      'effective_star_check_settings',
      'effective_permissions',
      'quota_check_settings',
      'star_check_settings',
      'model_whitelist',
    ]) {
      this.addSql(`drop table if exists "${table}";`);
    }
  }
}
