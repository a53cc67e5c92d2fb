import { randomBytes } from 'node:crypto';
import { type EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { inject } from 'vitest';
import { until } from './until.js';

/** A fresh, uniquely named database URL on the run's PostgreSQL (created on first connect). */
export function uniqueDatabaseUrl(label: string): string {
  const url = new URL(inject('adminDatabaseUrl'));
  const safe = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .slice(0, 30);
  url.pathname = `/qm_test_${safe}_${randomBytes(4).toString('hex')}`;
  return url.toString();
}

/** Drops a database made by uniqueDatabaseUrl, closing other sessions first. */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1);
  const admin = await MikroORM.init({
    clientUrl: inject('adminDatabaseUrl'),
    entities: [],
    discovery: { warnWhenNoEntities: false },
    allowGlobalContext: true,
    ensureDatabase: false,
  });
  try {
    await admin.em.getConnection().execute(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.close(true);
  }
}

/** Runs these statements, in order, on a database made by uniqueDatabaseUrl (created if it does not exist yet). */
export async function executeOn(databaseUrl: string, ...statements: string[]): Promise<void> {
  const orm = await MikroORM.init({
    clientUrl: databaseUrl,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    allowGlobalContext: true,
  });
  try {
    for (const statement of statements) await orm.em.getConnection().execute(statement);
  } finally {
    await orm.close(true);
  }
}

/**
 * Waits until at least `count` sessions of this EntityManager's database wait for an advisory lock (the
 * ledger and permission locks are advisory): how a test knows its racers queue behind a lock it holds.
 */
export async function advisoryLockWaiters(em: { execute: EntityManager['execute'] }, count: number): Promise<void> {
  await until(`${count} session(s) waiting for an advisory lock`, async () => {
    const [row] = await em.execute<{ n: string }[]>(
      `select count(*)::text as n from pg_locks where locktype = 'advisory' and not granted
          and database = (select oid from pg_database where datname = current_database())`,
    );
    return Number(row?.n) >= count;
  });
}
