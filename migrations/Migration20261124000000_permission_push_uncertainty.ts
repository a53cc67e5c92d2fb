import { Migration } from '@mikro-orm/migrations';

/**
 * Whether a push may have changed the gateway without us knowing what it holds now (SPEC §8: a write
 * whose every attempt went unanswered may have landed). SPEC §6 keeps "last told" as it was after a
 * failed push; alone, that hides one case: a value set back to what was last told is "already told"
 * and never pushed, while the gateway keeps the value of the push that landed unseen. So:
 * - `notified_uncertain` on each effective table: set when a push fails that may have landed, cleared
 *   when a push lands; while set, the record owes a push whatever its value (permission-store.ts);
 * - `last_notified_uncertain` on the removal outbox: the same for a removal push (the gateway may
 *   already hold `[]` / `false`), so an employee HR brings back is told their value again.
 */
export class Migration20261124000000_permission_push_uncertainty extends Migration {
  override async up(): Promise<void> {
    for (const table of ['effective_permissions', 'effective_star_check_settings', 'effective_quota_check_settings']) {
      this.addSql(`alter table "${table}" add column "notified_uncertain" boolean not null default false;`);
    }
    this.addSql(
      'alter table "permission_removal_push" add column "last_notified_uncertain" boolean not null default false;',
    );
  }

  override async down(): Promise<void> {
    for (const table of ['effective_permissions', 'effective_star_check_settings', 'effective_quota_check_settings']) {
      this.addSql(`alter table "${table}" drop column if exists "notified_uncertain";`);
    }
    this.addSql('alter table "permission_removal_push" drop column if exists "last_notified_uncertain";');
  }
}
