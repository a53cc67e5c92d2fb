import { Migration } from '@mikro-orm/migrations';

/**
 * The quota ledger (SPEC §5, §12): batches, audits, voucher redemptions and monthly usage, with the
 * old system's table and column names so its data can be adopted in place (`if not exists`
 * everywhere; new columns are nullable additions; constraints are added when missing).
 *
 * The money and exactly-once rules live here, not only in code:
 * - a batch amount is never negative (CHECK) and a user has one VALID batch per expiry (partial unique
 *   index, the target of the ledger's `INSERT … ON CONFLICT`);
 * - a DEDUCT reference is used once (partial unique index), so a replayed deduction cannot apply twice;
 * - a voucher is redeemed once: unique on md5(voucher_code), because codes of up to 4096 characters
 *   exceed what a btree entry may hold (about 2700 bytes);
 * - one usage record per user and month.
 */
export class Migration20261123100000_ledger extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table if not exists "quota" (
        "id" bigserial primary key,
        "user_id" text not null,
        "amount" numeric(14,2) not null,
        "expiry_date" timestamptz not null,
        "status" text not null default 'VALID',
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    this.addCheck('quota', 'quota_amount_non_negative', `"amount" >= 0`);
    this.addCheck('quota', 'quota_status_valid', `"status" in ('VALID', 'EXPIRED')`);
    this.addSql(
      `create unique index if not exists "quota_user_expiry_valid_key" on "quota" ("user_id", "expiry_date") where "status" = 'VALID';`,
    );
    this.addSql('create index if not exists "quota_fifo_idx" on "quota" ("user_id", "status", "expiry_date", "id");');

    this.addSql(`
      create table if not exists "quota_audit" (
        "id" bigserial primary key,
        "user_id" text not null,
        "amount" numeric(14,2) not null,
        "operation" text not null,
        "voucher_code" text null,
        "related_user" text null,
        "strategy_id" bigint null,
        "strategy_name" text null,
        "expiry_date" timestamptz not null,
        "details" text null,
        "create_time" timestamptz not null default now()
      );`);
    this.addSql('alter table "quota_audit" add column if not exists "reason" text null;');
    this.addSql('alter table "quota_audit" add column if not exists "reference" text null;');
    this.addSql('alter table "quota_audit" add column if not exists "actor" text null;');
    this.addCheck(
      'quota_audit',
      'quota_audit_operation_valid',
      `"operation" in ('RECHARGE', 'TRANSFER_IN', 'TRANSFER_OUT', 'EXPIRE', 'DEDUCT')`,
    );
    this.addSql(
      `create unique index if not exists "quota_audit_deduct_reference_key" on "quota_audit" ("reference") where "operation" = 'DEDUCT' and "reference" is not null;`,
    );
    this.addSql(
      'create index if not exists "quota_audit_user_time_idx" on "quota_audit" ("user_id", "create_time" desc, "id" desc);',
    );

    this.addSql(`
      create table if not exists "voucher_redemption" (
        "id" bigserial primary key,
        "voucher_code" text not null,
        "receiver_id" text not null,
        "create_time" timestamptz not null default now()
      );`);
    this.addSql('alter table "voucher_redemption" add column if not exists "result" text null;');
    this.addSql(
      'create unique index if not exists "voucher_redemption_code_md5_key" on "voucher_redemption" (md5("voucher_code"));',
    );

    this.addSql(`
      create table if not exists "monthly_quota_usage" (
        "id" bigserial primary key,
        "user_id" text not null,
        "year_month" char(7) not null,
        "used_quota" numeric(14,2) not null,
        "record_time" timestamptz not null,
        "create_time" timestamptz not null default now()
      );`);
    this.addSql(
      'create unique index if not exists "monthly_quota_usage_user_month_key" on "monthly_quota_usage" ("user_id", "year_month");',
    );
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "monthly_quota_usage";');
    this.addSql('drop table if exists "voucher_redemption";');
    this.addSql('drop table if exists "quota_audit";');
    this.addSql('drop table if exists "quota";');
  }

  /** `alter table … add constraint` has no `if not exists`: an adopted table may already have it. */
  private addCheck(table: string, name: string, condition: string): void {
    this.addSql(`
      do $$ begin
        if not exists (select 1 from pg_constraint where conname = '${name}' and conrelid = '"${table}"'::regclass) then
          alter table "${table}" add constraint "${name}" check (${condition});
        end if;
      end $$;`);
  }
}
