import { Migration } from '@mikro-orm/migrations';

/**
 * Job runs. Two partial unique indexes make the database the judge of "exactly once":
 * - `fire_key`: one row per scheduled fire (job key + scheduled instant), so with several instances
 *   on one database exactly one of them claims and runs each fire;
 * - `job_key` among active exclusive runs: a job never overlaps itself, and triggerScan of a type
 *   already running finds that run instead of starting another.
 */
export class Migration20261123130000_jobs extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "job_run" (
        "id" bigserial primary key,
        "type" text not null check ("type" in ('STRATEGY', 'EMPLOYEE_SYNC', 'EXPIRE_QUOTAS', 'SYNC_QUOTAS')),
        "job_key" text not null,
        "exclusive" boolean not null default true,
        "fire_key" text null,
        "trigger" text not null check ("trigger" in ('SCHEDULE', 'MANUAL', 'STARTUP')),
        "strategy_id" bigint null,
        "status" text not null check ("status" in ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED')),
        "processed" integer not null default 0,
        "succeeded" integer not null default 0,
        "failed" integer not null default 0,
        "error" text null,
        "requested_by" text null,
        "instance_id" text null,
        "heartbeat_at" timestamptz null,
        "started_at" timestamptz null,
        "finished_at" timestamptz null,
        "create_time" timestamptz not null default now()
      );`);
    this.addSql('create unique index "job_run_fire_key_uniq" on "job_run" ("fire_key") where "fire_key" is not null;');
    this.addSql(
      `create unique index "job_run_active_exclusive_uniq" on "job_run" ("job_key") where "exclusive" and "status" in ('QUEUED', 'RUNNING');`,
    );
    this.addSql('create index "job_run_type_created_idx" on "job_run" ("type", "create_time" desc, "id" desc);');
    this.addSql(`create index "job_run_active_idx" on "job_run" ("status") where "status" in ('QUEUED', 'RUNNING');`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "job_run";');
  }
}
