import { Migration } from '@mikro-orm/migrations';

/**
 * The HR mirror (SPEC §7, §12). Written so that a table copied from the old system can be adopted in
 * place: `if not exists` everywhere, `dep_id` added as a new nullable column.
 *
 * Departments are queried as path elements (`string_to_array(dept_full_level_names, ',') @> array[$1]`);
 * the GIN index on that expression serves those lookups (string_to_array is immutable, so it is indexable).
 */
export class Migration20261123110000_employees extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create table if not exists "employee_department" (
        "id" bigserial primary key,
        "employee_number" text not null,
        "username" text not null,
        "dept_full_level_names" text not null,
        "create_time" timestamptz not null default now(),
        "update_time" timestamptz not null default now()
      );`);
    this.addSql('alter table "employee_department" add column if not exists "dep_id" text null;');
    this.addSql(
      'create unique index if not exists "employee_department_employee_number_key" on "employee_department" ("employee_number");',
    );
    this.addSql(
      `create index if not exists "employee_department_path_gin" on "employee_department" using gin ((string_to_array("dept_full_level_names", ',')));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "employee_department";');
  }
}
