import { Migrator } from '@mikro-orm/migrations';
import { type EntityManager, MikroORM, type Options } from '@mikro-orm/postgresql';
import { migrationsList } from '../../migrations/index.js';
import type { Logger } from '../logger.js';
import { directoryEntities, mainEntities } from './entities.js';
import { ReviewedMigrationGenerator } from './migration-generator.js';
import { isSqlState, SqlState } from './sql-state.js';

export type { EntityManager };

/** Any fixed number: the key of the advisory lock that serialises migrations across instances. */
const MIGRATION_LOCK_KEY = 7_301_124_001;

export function mainOrmOptions(clientUrl: string, logger?: Logger): Options {
  return {
    clientUrl,
    entities: mainEntities,
    extensions: [Migrator],
    allowGlobalContext: false,
    // Money and ids come back as strings (numeric, bigint); we convert at the edges.
    forceUtcTimezone: true,
    pool: { min: 0, max: 20 },
    debug: false,
    logger: (message) => logger?.debug({ orm: message }, 'orm'),
    migrations: {
      migrationsList,
      path: 'migrations',
      pathTs: 'migrations',
      emit: 'ts',
      transactional: true,
      allOrNothing: true,
      snapshot: false,
      silent: true,
      // Writes only additive statements; see the file for why.
      generator: ReviewedMigrationGenerator,
    },
  };
}

/**
 * Connects, creating the database when it does not exist. Instances starting together on a new
 * database both see it missing and both create it; the loser's CREATE DATABASE fails (42P04, or
 * 23505 on pg_database while the winner's is uncommitted), and it connects again to the winner's.
 */
export async function openMainOrm(clientUrl: string, logger?: Logger): Promise<MikroORM> {
  for (let attempt = 1; ; attempt++) {
    const orm = await MikroORM.init({ ...mainOrmOptions(clientUrl, logger), connect: false });
    try {
      await orm.connect();
      return orm;
    } catch (error) {
      await orm.close(true).catch(() => undefined);
      if (attempt >= 3 || !isDuplicateDatabase(error)) throw error;
    }
  }
}

function isDuplicateDatabase(error: unknown): boolean {
  // Two processes creating it at once: the loser gets 42P04, or 23505 on the catalog's own index.
  if (isSqlState(error, SqlState.duplicateDatabase)) return true;
  return isSqlState(error, SqlState.uniqueViolation) && /pg_database/.test(String((error as Error).message));
}

/** The user directory in its own database: read-only, never migrated, never created. */
export async function openDirectoryOrm(clientUrl: string, logger?: Logger): Promise<MikroORM> {
  return MikroORM.init({
    clientUrl,
    entities: directoryEntities,
    allowGlobalContext: false,
    forceUtcTimezone: true,
    ensureDatabase: false,
    pool: { min: 0, max: 10 },
    logger: (message) => logger?.debug({ orm: message }, 'orm'),
  });
}

/**
 * Applies pending migrations under a transaction-scoped advisory lock, so two instances starting
 * together run them once: the second waits, then finds nothing pending.
 */
export async function migrate(orm: MikroORM): Promise<string[]> {
  return orm.em.fork().transactional(async (em) => {
    await em.execute(`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    const applied = await orm.migrator.up({ transaction: em.getTransactionContext() });
    return applied.map((migration) => migration.name);
  });
}

/**
 * Migrations the database records that this code does not know: a newer version applied them (this
 * is a rollback to an older image). MikroORM ignores them silently; the caller says so.
 */
export async function unknownAppliedMigrations(orm: MikroORM): Promise<string[]> {
  const known = new Set(migrationsList.map((migration) => migration.name));
  return (await orm.migrator.getExecutedMigrations()).map((row) => row.name).filter((name) => !known.has(name));
}

/** Names of migrations not yet applied (readiness). */
export async function pendingMigrations(orm: MikroORM): Promise<string[]> {
  return (await orm.migrator.getPendingMigrations()).map((migration) => migration.name);
}
