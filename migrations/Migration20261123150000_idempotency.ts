import { Migration } from '@mikro-orm/migrations';

/**
 * Idempotency keys of transferOut, deductQuota, runStrategy and triggerScan. The primary key is the
 * judge of "once": a call inserts its key in the same transaction as its work, so two racing calls
 * with one key serialise on the index and the loser reads the winner's committed answer. A refused
 * call rolls back and leaves no key, so it may be retried with the same key.
 */
export class Migration20261123150000_idempotency extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table "idempotency_key" (
        "operation" text not null,
        "principal" text not null,
        "key" text not null,
        "request_hash" text not null,
        "result" jsonb null,
        "create_time" timestamptz not null,
        "expire_time" timestamptz not null,
        primary key ("operation", "principal", "key")
      );`);
    this.addSql('create index "idempotency_key_expire_idx" on "idempotency_key" ("expire_time");');
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "idempotency_key";');
  }
}
