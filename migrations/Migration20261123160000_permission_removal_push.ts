import { Migration } from '@mikro-orm/migrations';

/**
 * The outbox of the gateway pushes owed for employees that employee sync removed (SPEC §7: `[]` models
 * and star-check `false` where the gateway had been told otherwise). Their effective records are
 * deleted with them, so no recompute would ever push again: the owed push is written here in the
 * sync's own transaction, deleted once the gateway took it, and retried after every employee sync
 * while it fails (SPEC §6: the database keeps the intended state).
 * - `push_value`: what to send, in the kind's stored form (KindSpec.write, as in the permission
 *   tables: the comma-joined model list as a jsonb string, or a jsonb boolean);
 * - `last_notified`: what the gateway had last been told before the removal (same form) — if HR
 *   brings the employee back before the push went out, the row is dropped and their new effective
 *   record starts from this "last told", so their recompute pushes whatever differs from it;
 * - `audit_id`: the permission_audit row of the push, which gets its outcome (no foreign key: audits
 *   may be adopted from the old system and are never rewritten by it).
 * One row per (kind, employee key): a newer removal replaces an older one.
 */
export class Migration20261123160000_permission_removal_push extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "permission_removal_push" (
        "kind" varchar(20) not null check ("kind" in ('MODEL', 'STAR_CHECK', 'QUOTA_CHECK')),
        "employee_key" varchar(500) not null,
        "push_value" jsonb not null,
        "last_notified" jsonb null,
        "audit_id" bigint not null,
        "create_time" timestamptz not null default now(),
        primary key ("kind", "employee_key")
      );`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "permission_removal_push";');
  }
}
