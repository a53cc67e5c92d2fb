import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { capturingLogger } from '../support/logger.js';

/**
 * An older image started on a database a newer version migrated (a rollback): MikroORM ignores the
 * migrations it does not know, so the start says so — and still runs, since undoing a bad release this
 * way works while the newer migrations only added.
 */

const NEWER = 'Migration20991231000000_from_a_newer_version';
const WARNING = /migrations this version does not know/;

let first: TestApp;
const firstLog = capturingLogger();

beforeAll(async () => {
  first = await startTestApp({ label: 'newer-schema', logger: firstLog.logger });
});
afterAll(async () => {
  await first?.stop();
});

describe('a database with migrations this version does not know', () => {
  it('a start on a database it migrated itself says nothing of the kind', () => {
    expect(firstLog.lines().filter((line) => WARNING.test(String(line.msg)))).toEqual([]);
  });

  it('is named in a warning at start; the server still starts and is ready', async () => {
    await first.app.services.orm.em
      .fork()
      .execute('insert into mikro_orm_migrations (name, executed_at) values (?, now())', [NEWER]);
    const { logger, lines } = capturingLogger();
    const older = await startTestApp({
      label: 'newer-schema-older',
      databaseUrl: first.databaseUrl,
      simulator: first.simulator,
      logger,
    });
    try {
      expect(lines().filter((line) => WARNING.test(String(line.msg)))).toEqual([
        expect.objectContaining({ level: 40, migrations: [NEWER] }),
      ]);
      const ready = await fetch(`${older.baseUrl}/ready`);
      expect(ready.status).toBe(200);
    } finally {
      await older.stop();
    }
  });
});
