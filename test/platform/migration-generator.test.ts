import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAdditive, ReviewedMigrationGenerator, splitDiff } from '../../src/db/migration-generator.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * `npm run migration:create` writes only what adds to the schema (src/db/migration-generator.ts): the
 * ORM's diff of entities against the migrated database also proposes dropping the CHECK constraints,
 * partial unique indexes and entity-less tables the migrations built.
 */

describe('isAdditive', () => {
  it.each([
    'create table "gadget" ("id" bigserial primary key, "type" text not null, "drop_time" timestamptz null);',
    'create unique index "gadget_name_key" on "gadget" ("name") where "status" = \'VALID\';',
    'create index "gadget_time_idx" on "gadget" ("create_time");',
    'alter table "gadget" add column "note" text null;',
    'alter table "gadget" add constraint "gadget_owner_fk" foreign key ("owner_id") references "owner" ("id") on update cascade on delete cascade;',
    'comment on column "gadget"."note" is \'drop me a line\';',
  ])('writes %s', (statement) => {
    expect(isAdditive(statement)).toBe(true);
  });

  it.each([
    'drop table if exists "idempotency_key" cascade;',
    'drop index "voucher_redemption_code_md5_key";',
    'alter table "quota" drop constraint if exists "quota_status_check";',
    'alter table "job_run" alter column "type" type text using ("type"::text);',
    'alter table "gadget" rename column "a" to "b";',
    'alter table "gadget" add column "b" int null, drop column "c";',
    'truncate "gadget";',
    'update "gadget" set "note" = null;',
  ])('holds back %s', (statement) => {
    expect(isAdditive(statement)).toBe(false);
  });
});

describe('the generator', () => {
  let app: TestApp;
  let folder: string;
  beforeAll(async () => {
    app = await startTestApp({ label: 'migration-generator' });
    folder = await mkdtemp(path.join(tmpdir(), 'qm-migrations-'));
  });
  afterAll(async () => {
    await app?.stop();
    await rm(folder, { recursive: true, force: true });
  });

  it('finds nothing to add on the migrated schema (every entity is covered by a migration) and writes no file', async () => {
    // With MikroORM's own generator this diff (which proposes dropping constraints) would be written.
    const result = await app.app.services.orm.migrator.createMigration(folder, false, false, 'drift');
    expect(splitDiff(result.diff).held.length).toBeGreaterThan(0);
    expect(splitDiff(result.diff).written).toEqual([]);
    expect(result.fileName).toBe('');
    expect(await readdir(folder)).toEqual([]);
  });

  it('writes the additive statements and comments out the rest, with no down() that undoes them', async () => {
    const orm = app.app.services.orm;
    const generator = new ReviewedMigrationGenerator(
      orm.em.getDriver(),
      orm.config.getNamingStrategy(),
      orm.config.get('migrations'),
    );
    const [code, fileName] = await generator.generate(
      {
        up: [
          'create table "gadget" ("id" bigserial primary key, "name" text not null);',
          '',
          'drop index "voucher_redemption_code_md5_key";',
        ],
        down: ['drop table if exists "gadget" cascade;', 'create unique index "voucher_redemption_code_md5_key" …;'],
      },
      folder,
      'gadget',
    );
    expect(await readFile(path.join(folder, fileName), 'utf8')).toBe(code);
    const upBody = code.slice(code.indexOf('async up()'), code.indexOf('async down()'));
    expect(upBody).toContain('this.addSql(`create table "gadget"');
    expect(upBody).toContain('// drop index "voucher_redemption_code_md5_key";');
    expect(upBody).not.toContain('this.addSql(`drop index');
    expect(code.slice(code.indexOf('async down()'))).not.toContain('this.addSql(');
  });
});
