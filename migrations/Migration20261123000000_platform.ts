import { Migration } from '@mikro-orm/migrations';

/**
 * The user directory. It belongs to the login system; we create it only when it is missing, so a
 * fresh database works out of the box and an adopted one is left as it is. With AUTH_DATABASE_URL
 * the directory lives elsewhere and this table simply stays empty.
 */
export class Migration20261123000000_platform extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table if not exists "auth_users" (
        "id" text primary key,
        "created_at" timestamptz null default now(),
        "updated_at" timestamptz null default now(),
        "access_time" timestamptz null,
        "name" text null,
        "github_id" text null,
        "github_name" text null,
        "vip" integer not null default 0,
        "phone" text null,
        "email" text null,
        "company" text null,
        "employee_number" text null,
        "github_star" text null
      );`);
    this.addSql('create index if not exists "auth_users_employee_number_idx" on "auth_users" ("employee_number");');
  }

  override async down(): Promise<void> {
    // The directory is not ours to drop: leave it.
  }
}
