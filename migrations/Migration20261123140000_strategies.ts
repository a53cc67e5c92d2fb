import { Migration } from '@mikro-orm/migrations';

/**
 * Strategies and their executions (SPEC §4, §12), with the old system's table and column names so its
 * data can be adopted in place: `if not exists` everywhere, new columns added and back-filled when the
 * table came from the old system.
 *
 * Exactly-once lives here, not only in code:
 * - a single strategy grants a user at most once: a unique partial index on (strategy_id, user_id)
 *   over rows that are PROCESSING or COMPLETED. The index cannot read the strategy's type, so each
 *   execution carries a copy of it (`single`). FAILED rows are outside the index, so a failed user
 *   is claimed again by the next run;
 * - a fire of a strategy grants a user at most once: unique (strategy_id, user_id, fire_key), where
 *   the fire key is the scheduled instant of a scheduled run or `run:<job run id>` of a manual one.
 * Deleting a strategy deletes its executions (foreign key, on delete cascade); audits keep the
 * strategy's id and name without a foreign key.
 */
export class Migration20261123140000_strategies extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table if not exists "quota_strategy" (
        "id" bigserial primary key,
        "name" text not null,
        "title" text not null,
        "type" text not null,
        "amount" numeric(14,2) not null,
        "model" text null,
        "periodic_expr" text null,
        "condition" text not null,
        "max_exec_per_user" integer not null default 0,
        "status" boolean not null default true,
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    this.addSql('alter table "quota_strategy" add column if not exists "validity_days" integer null;');
    this.addSql('create unique index if not exists "quota_strategy_name_key" on "quota_strategy" ("name");');
    this.addCheck('quota_strategy', 'quota_strategy_type_valid', `"type" in ('single', 'periodic')`);
    this.addCheck('quota_strategy', 'quota_strategy_amount_positive', `"amount" > 0`);
    this.addCheck('quota_strategy', 'quota_strategy_max_exec_non_negative', `"max_exec_per_user" >= 0`);
    this.addCheck(
      'quota_strategy',
      'quota_strategy_validity_days_positive',
      `"validity_days" is null or "validity_days" >= 1`,
    );
    // The schedule watcher polls count(*) and max(update_time) every few seconds.
    this.addSql('create index if not exists "quota_strategy_update_time_idx" on "quota_strategy" ("update_time");');

    this.addSql(`
      create table if not exists "quota_execute" (
        "id" bigserial primary key,
        "strategy_id" bigint not null,
        "user_id" text not null,
        "batch_number" text not null,
        "status" text not null,
        "expiry_date" timestamptz not null,
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    // Additions to the old table; back-filled for rows adopted from the old system.
    this.addSql('alter table "quota_execute" add column if not exists "amount" numeric(14,2) null;');
    this.addSql('alter table "quota_execute" add column if not exists "error" text null;');
    this.addSql('alter table "quota_execute" add column if not exists "fire_key" text null;');
    this.addSql('alter table "quota_execute" add column if not exists "job_run_id" bigint null;');
    this.addSql('alter table "quota_execute" add column if not exists "single" boolean null;');
    this.addSql(`
      update "quota_execute" e set
        "amount" = coalesce(e."amount", s."amount"),
        "single" = coalesce(e."single", s."type" = 'single'),
        "fire_key" = coalesce(e."fire_key", 'legacy:' || e."batch_number")
      from "quota_strategy" s
      where s."id" = e."strategy_id" and (e."amount" is null or e."single" is null or e."fire_key" is null);`);
    // Executions of strategies that no longer exist cannot be kept under the foreign key.
    this.addSql(
      `delete from "quota_execute" e where not exists (select 1 from "quota_strategy" s where s."id" = e."strategy_id");`,
    );
    this.addSql('alter table "quota_execute" alter column "amount" set not null;');
    this.addSql('alter table "quota_execute" alter column "fire_key" set not null;');
    this.addSql('alter table "quota_execute" alter column "single" set not null;');
    this.addCheck('quota_execute', 'quota_execute_status_valid', `"status" in ('processing', 'completed', 'failed')`);
    this.addCheck('quota_execute', 'quota_execute_amount_positive', `"amount" > 0`);
    this.addSql(`
      do $$ begin
        if not exists (select 1 from pg_constraint where conname = 'quota_execute_strategy_fk'
                       and conrelid = '"quota_execute"'::regclass) then
          alter table "quota_execute" add constraint "quota_execute_strategy_fk"
            foreign key ("strategy_id") references "quota_strategy" ("id") on delete cascade;
        end if;
      end $$;`);
    this.addSql(
      `create unique index if not exists "quota_execute_single_once_key" on "quota_execute" ("strategy_id", "user_id") where "single" and "status" in ('processing', 'completed');`,
    );
    this.addSql(
      'create unique index if not exists "quota_execute_fire_once_key" on "quota_execute" ("strategy_id", "user_id", "fire_key");',
    );
    // Counting a user's completed executions (maxExecPerUser) and excluding them from candidates.
    this.addSql(
      `create index if not exists "quota_execute_completed_idx" on "quota_execute" ("strategy_id", "user_id") where "status" = 'completed';`,
    );
    // Listing a strategy's executions, newest first, optionally by status.
    this.addSql(
      'create index if not exists "quota_execute_strategy_list_idx" on "quota_execute" ("strategy_id", "create_time" desc, "id" desc);',
    );
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "quota_execute";');
    this.addSql('drop table if exists "quota_strategy";');
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
