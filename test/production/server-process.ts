import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MikroORM } from '@mikro-orm/postgresql';
import { freePort } from '../../src/db/embedded-postgres.js';
import { mintToken } from '../../src/modules/auth/token-verifier.js';
import { TEST_JWT_SECRET, TEST_VOUCHER_KEY } from '../support/app.js';

/**
 * Real server processes for the production tests: `node --import tsx src/main.ts`, one OS process per
 * instance (so SIGKILL and SIGTERM mean what they mean in production), configured only through the
 * environment, logging JSON lines that the test keeps for its failure messages.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** tsx's loader by absolute URL: the processes run in an empty folder, where `tsx` would not resolve. */
const TSX_LOADER = pathToFileURL(path.join(PROJECT_ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

/** A start that failed because another process had bound the chosen port first. */
class PortTakenError extends Error {}

/** Every process this module started and has not seen exit: killed by `killAllServers`. */
const living = new Set<ServerProcess>();

export interface GraphqlAnswer<T = Record<string, unknown>> {
  status: number;
  data: T | null;
  errors: { message: string; extensions?: Record<string, unknown> }[] | undefined;
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The environment of one instance: a real database, the test's gateway simulator, schedules on. */
export function serverEnv(databaseUrl: string, gatewayUrl: string, extra: Record<string, string> = {}) {
  return {
    DATABASE_URL: databaseUrl,
    AIGATEWAY_URL: gatewayUrl,
    AIGATEWAY_TIMEOUT_MS: '2000',
    AIGATEWAY_RETRY_BASE_MS: '5',
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    VOUCHER_SIGNING_KEY: TEST_VOUCHER_KEY,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

export function tokenFor(userId: string, admin = false): Promise<string> {
  return mintToken(TEST_JWT_SECRET, { userId, admin, ttl: '1h' });
}

export class ServerProcess {
  private output = '';
  private readonly workDir: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly label: string,
    readonly port: number,
    private readonly child: ChildProcessWithoutNullStreams,
    workDir: string,
  ) {
    this.workDir = workDir;
    child.stdout.on('data', (chunk) => {
      this.output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      this.output += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        living.delete(this);
        void rm(this.workDir, { recursive: true, force: true });
        resolve({ code, signal });
      });
    });
  }

  /**
   * Starts an instance on a free port and waits until `/ready` answers 200 (database reachable,
   * migrations applied). `env` is the whole configuration (logging at info at least); PORT is chosen here.
   *
   * The port is picked before the process starts (PORT=0 is not accepted), so another process may bind
   * it first: that start fails saying the port is in use and is tried again on another port. Until the
   * process has logged "listening", a /ready answer on the port is not taken for its own.
   */
  static async start(label: string, env: Record<string, string>, timeoutMs = 45_000): Promise<ServerProcess> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ServerProcess.startOn(await freePort(), label, env, timeoutMs);
      } catch (error) {
        if (!(error instanceof PortTakenError) || attempt >= 3) throw error;
      }
    }
  }

  private static async startOn(
    port: number,
    label: string,
    env: Record<string, string>,
    timeoutMs: number,
  ): Promise<ServerProcess> {
    const workDir = await mkdtemp(path.join(tmpdir(), `qm-${label}-`));
    const child = spawn(process.execPath, ['--import', TSX_LOADER, path.join(PROJECT_ROOT, 'src/main.ts')], {
      // An empty folder: no .env of the developer's is read, no .data is written.
      cwd: workDir,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? workDir,
        TSX_TSCONFIG_PATH: path.join(PROJECT_ROOT, 'tsconfig.json'),
        ...env,
        PORT: String(port),
      },
    });
    const server = new ServerProcess(label, port, child, workDir);
    living.add(server);
    try {
      await pollUntil(`${label} ready`, timeoutMs, async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          await server.exited; // its output read to the end
          const message = `${label} exited during start (${child.exitCode ?? child.signalCode}):\n${server.tail()}`;
          throw /already in use|EADDRINUSE/.test(server.logs()) ? new PortTakenError(message) : new Error(message);
        }
        if (!server.logLines().some((line) => line.msg === 'listening')) return false;
        const response = await fetch(`${server.baseUrl}/ready`).catch(() => null);
        return response?.status === 200;
      });
    } catch (error) {
      server.kill('SIGKILL');
      await server.exited;
      throw error;
    }
    return server;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The job runner's instance ids start with the pid: `<pid>-<random>`. */
  ownsInstanceId(instanceId: string | null | undefined): boolean {
    return typeof instanceId === 'string' && instanceId.startsWith(`${this.pid}-`);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM and the exit; SIGKILL when it does not exit within the deadline. */
  async stop(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Everything the process wrote so far. */
  logs(): string {
    return this.output;
  }

  /** The last lines, for failure messages. */
  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  logLines(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.output.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // a line cut in the middle by a kill
      }
    }
    return lines;
  }

  /** One GraphQL operation over HTTP; throws when the answer is not JSON. */
  async gql<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown> = {},
    token: string | null = null,
  ): Promise<GraphqlAnswer<T>> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${this.baseUrl}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
    const text = await response.text();
    let body: { data?: T | null; errors?: GraphqlAnswer['errors'] };
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`${this.label}: not JSON (HTTP ${response.status}): ${text.slice(0, 200)}`);
    }
    return { status: response.status, data: body.data ?? null, errors: body.errors };
  }

  /** The data of an operation that must succeed. */
  async must<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown>,
    token: string,
  ): Promise<T> {
    const answer = await this.gql<T>(query, variables, token);
    if (!answer.data || answer.errors) {
      throw new Error(`${this.label}: ${query.trim().slice(0, 60)}… failed: ${JSON.stringify(answer.errors)}`);
    }
    return answer.data;
  }
}

/** Kills (SIGKILL) every server process still running: the afterAll of each file, whatever happened. */
export async function killAllServers(): Promise<void> {
  const servers = [...living];
  for (const server of servers) server.kill('SIGKILL');
  await Promise.all(servers.map((server) => server.exited));
}

/** Polls `check` until it returns true; throws with `what` when the deadline passes. */
export async function pollUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
  intervalMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A plain connection to the instances' database, for the test's own SQL (never migrates, never creates). */
export async function openDatabase(databaseUrl: string): Promise<MikroORM> {
  return MikroORM.init({
    clientUrl: databaseUrl,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    allowGlobalContext: true,
    ensureDatabase: false,
    forceUtcTimezone: true,
    pool: { min: 0, max: 4 },
  });
}

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence of decisions. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
