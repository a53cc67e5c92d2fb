import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { silentLogger } from '../../src/logger.js';

/**
 * One PostgreSQL for the whole run: DATABASE_URL when set (a real server), otherwise an embedded
 * cluster in a temp folder. Each test file creates its own database on it (test/support/database.ts).
 */

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

const TEMP_PREFIX = 'quota-manager-test-';

/** Clusters of earlier runs whose worker was killed: remove their folders (their postgres died with them or is orphaned). */
async function removeStaleClusters(): Promise<void> {
  const root = tmpdir();
  for (const entry of await readdir(root)) {
    if (!entry.startsWith(TEMP_PREFIX)) continue;
    const folder = path.join(root, entry);
    const info = await stat(folder).catch(() => null);
    if (info && Date.now() - info.mtimeMs > 6 * 3600_000) await rm(folder, { recursive: true, force: true });
  }
}

let database: EmbeddedDatabase | null = null;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.DATABASE_URL) {
    project.provide('adminDatabaseUrl', process.env.DATABASE_URL);
    return;
  }
  await removeStaleClusters();
  const folder = await mkdtemp(path.join(tmpdir(), TEMP_PREFIX));
  await chmod(folder, 0o755);
  database = await startEmbeddedPostgres({
    root: path.join(folder, 'data'),
    persistent: false,
    logger: silentLogger(),
  });
  project.provide('adminDatabaseUrl', database.url);
}

export async function teardown(): Promise<void> {
  await database?.stop();
}
