import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { printSchema } from 'graphql';
import { type RunningApp, startApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { buildApiSchema } from '../src/graphql/schema.js';
import { silentLogger } from '../src/logger.js';
import { mintToken } from '../src/modules/auth/token-verifier.js';
import {
  type CallFilter,
  GatewaySimulator,
  type RecordedCall,
} from '../src/modules/gateway/simulator/gateway-simulator.js';
import { type Cents, centsToDecimalString, decimalToCents } from '../src/money.js';
import { ledgerViolations as checkLedgerInvariants, type InvariantOptions } from '../test/support/ledger-invariants.js';

/**
 * What every benchmark shares: the result type the runner (run-all.ts) collects, options, an embedded
 * PostgreSQL with a fresh database, the gateway simulator over HTTP (in this process or in a process of
 * its own) with an async handle that works for both, the app, tokens, a pg pool for
 * raw-SQL baselines, a concurrent driver with latency percentiles, SQL statement counting, memory
 * sampling, the ledger invariants and printing.
 *
 * A bench module exports `run(options): Promise<BenchResult>` and ends with `runIfMain(import.meta.url, run)`,
 * so it runs alone (`npm run bench:<name>`) and under `npm run bench`.
 */

// ---------------------------------------------------------------------------------------------------
// The contract between a bench and the runner

export interface BenchResult {
  /** Short name, e.g. `scan`, `transfer`, `read`, `expiry`, `permissions`. */
  name: string;
  /** The measured figures, named with their unit (`grantsPerSecond`, `p99Ms`, `peakRssMb`, …). */
  figures: Record<string, number | string>;
  /**
   * What the bench is compared with, measured in the same run: its figure in words (`raw bulk INSERT
   * 80283 grants/s`) or as a number in the bench's main unit.
   */
  baseline: string | number;
  /** The bench's main figure over the baseline's, in the sense of the target (e.g. server/raw); null = none. */
  ratio: number | null;
  /** The target in words, e.g. `ratio ≥ 0.30, p99 ≤ 50 ms`; '' when the issue sets none. */
  target: string;
  /** Whether every part of the target was met; null when there is no target. */
  met: boolean | null;
}

export interface BenchOptions {
  /** Small sizes for a smoke run (the bench still does everything, on fewer rows). BENCH_QUICK=1 alone. */
  quick?: boolean;
  /**
   * A PostgreSQL server (postgres://… of any database on it) on which the bench creates, and drops
   * afterwards, a database of its own; the runner passes one embedded cluster to every bench. Absent:
   * the bench starts an embedded PostgreSQL of its own.
   */
  postgresUrl?: string;
  /** Where the bench prints its report lines (default: stdout). */
  log?: (line: string) => void;
}

export type BenchRun = (options?: BenchOptions) => Promise<BenchResult>;

/** The options with their defaults filled in. */
export function resolveOptions(options: BenchOptions = {}): Required<Omit<BenchOptions, 'postgresUrl'>> & {
  postgresUrl?: string;
} {
  return {
    quick: options.quick ?? isQuickFromEnv(),
    postgresUrl: options.postgresUrl,
    log: options.log ?? ((line: string) => console.log(line)),
  };
}

function isQuickFromEnv(): boolean {
  const value = process.env.BENCH_QUICK;
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}

/**
 * Runs the bench when this module is the program (`tsx bench/x.ts`), not when the runner imports it:
 * prints its result and exits non-zero only on an error (a missed target is a figure, not a failure).
 */
export function runIfMain(moduleUrl: string, run: BenchRun): void {
  const entry = process.argv[1];
  if (!entry || pathToFileURL(path.resolve(entry)).href !== moduleUrl) return;
  run()
    .then((result) => {
      console.log(`\n${formatResultTable([result])}`);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}

// ---------------------------------------------------------------------------------------------------
// Settings

/** A positive whole number from the environment, or the fallback. */
export function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name} must be a positive whole number`);
  return parsed;
}

export const BENCH_JWT_SECRET = 'bench-jwt-secret-that-is-at-least-32-bytes';
export const BENCH_VOUCHER_KEY = 'bench-voucher-key-that-is-at-least-32-bytes';
export const BENCH_ZONE = 'Asia/Shanghai';

// ---------------------------------------------------------------------------------------------------
// pg, for raw-SQL baselines and seeding (pg ships no types of its own; @mikro-orm/postgresql depends on it)

export interface PgClient {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  release(): void;
}
export interface PgPool {
  connect(): Promise<PgClient>;
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): void;
}
const pg = createRequire(import.meta.url)('pg') as {
  Pool: new (options: { connectionString: string; max: number }) => PgPool;
};

export function createPool(connectionString: string, max = 20): PgPool {
  const pool = new pg.Pool({ connectionString, max });
  pool.on('error', () => undefined);
  return pool;
}

// ---------------------------------------------------------------------------------------------------
// The environment: PostgreSQL, a fresh database, the simulator, the app

export interface BenchEnvironment {
  app: RunningApp;
  /** The gateway simulator the app calls, in this process or in its own: the same async handle for both. */
  gateway: BenchGateway;
  /**
   * The in-process simulator itself (`gateway: 'in-process'`, the default), for benches that watch its
   * HTTP server from this process (watchHttpServer) or set faults; with `gateway: 'process'` reading it
   * throws — use `gateway`.
   */
  simulator: GatewaySimulator;
  /** A pg pool on the bench's database, beside the app's own. */
  pool: PgPool;
  databaseUrl: string;
  postgresVersion: string;
  /** A verified-token JWT for this user (HS256 with the app's secret, 2 h). */
  token(userId: string, admin?: boolean): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Where the gateway simulator runs: `process` = `src/cli/gateway-sim.ts` in a child process, as a real
 * gateway is another service on another machine (this process's CPU is then the server's and the
 * clients' alone); `in-process` = in this process, sharing its event loop and core with the server.
 */
export type GatewayKind = 'process' | 'in-process';

export interface BenchEnvironmentOptions {
  /** Names the database (`bench_<name>_<random>`) and the temp folder. */
  name: string;
  options: BenchOptions;
  /** Extra environment for the app's config (over the bench defaults). */
  env?: Record<string, string>;
  /** false = no HTTP server (benches that call services directly). Default true. */
  listen?: boolean;
  /** Size of the raw pg pool (default 20). */
  poolSize?: number;
  /** Where the gateway simulator runs (default `in-process`). */
  gateway?: GatewayKind;
}

/**
 * An app on a fresh database with the gateway simulator over HTTP, no cron schedules (benches
 * trigger jobs themselves), logs silenced. `stop()` undoes everything it started (the simulator's
 * child process included), also when the start fails half-way.
 */
export async function startBenchEnvironment(settings: BenchEnvironmentOptions): Promise<BenchEnvironment> {
  const undo: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const step of undo.reverse()) await step().catch(() => undefined);
  };
  try {
    let serverUrl = settings.options.postgresUrl;
    if (!serverUrl) {
      const own = await startOwnPostgres(settings.name);
      undo.push(own.stop);
      serverUrl = own.url;
    }
    const databaseUrl = withDatabase(serverUrl, `bench_${settings.name}_${randomBytes(3).toString('hex')}`);
    // Dropped last (undo runs in reverse): after the app and the pool have closed their connections.
    undo.push(() => dropDatabase(serverUrl, databaseUrl));
    let simulator: GatewaySimulator | undefined;
    let gateway: BenchGateway;
    if (settings.gateway === 'process') {
      const child = await startGatewayProcess();
      undo.push(() => child.stop());
      gateway = child;
    } else {
      const inProcess = new GatewaySimulator();
      await inProcess.start(0);
      undo.push(() => inProcess.stop());
      simulator = inProcess;
      gateway = inProcessGateway(inProcess);
    }
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      AIGATEWAY_URL: gateway.url,
      AUTH_JWT_SECRET: BENCH_JWT_SECRET,
      VOUCHER_SIGNING_KEY: BENCH_VOUCHER_KEY,
      TZ_NAME: BENCH_ZONE,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
      ...settings.env,
    });
    config.port = 0;
    const app = await startApp({ config, logger: silentLogger(), schedule: false, listen: settings.listen ?? true });
    undo.push(() => app.stop());
    const pool = createPool(databaseUrl, settings.poolSize ?? 20);
    undo.push(() => pool.end());
    const version = await pool.query<{ server_version: string }>('show server_version');
    return {
      app,
      gateway,
      get simulator(): GatewaySimulator {
        if (!simulator) throw new Error("environment.simulator exists only with gateway: 'in-process'; use gateway");
        return simulator;
      },
      pool,
      databaseUrl,
      postgresVersion: version.rows[0]!.server_version,
      token: (userId, admin = false) => mintToken(BENCH_JWT_SECRET, { userId, admin, ttl: '2h' }),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------
// The gateway simulator, in this process or in a process of its own, behind one async handle

export interface GatewayUser {
  total: Cents;
  used: Cents;
}

/** The gateway simulator as benches drive it: async, so that it works the same in either place. */
export interface BenchGateway {
  kind: GatewayKind;
  /** Where the app reaches it (loopback HTTP either way). */
  url: string;
  /** For report lines: `in this process` or `in a process of its own`. */
  where: string;
  setUser(userId: string, quota: Partial<GatewayUser>): Promise<void>;
  /** Many users at once (several requests in flight to a child). */
  setUsers(users: readonly ({ userId: string } & GatewayUser)[]): Promise<void>;
  /** Every user's counters as the gateway holds them now, in one snapshot (GET /__sim/state). */
  users(): Promise<Map<string, GatewayUser>>;
  /** The calls received since the last clearCalls (the simulator logs every call). */
  calls(filter?: CallFilter): Promise<RecordedCall[]>;
  /** Empties the call log, which otherwise grows with every call. */
  clearCalls(): Promise<void>;
}

/** The handle over a simulator in this process (its stop is the environment's). */
export function inProcessGateway(simulator: GatewaySimulator): BenchGateway {
  return {
    kind: 'in-process',
    url: simulator.url,
    where: 'in this process',
    async setUser(userId, quota) {
      simulator.setUser(userId, quota);
    },
    async setUsers(users) {
      for (const user of users) simulator.setUser(user.userId, { total: user.total, used: user.used });
    },
    async users() {
      return new Map(Object.entries(simulator.snapshot().users));
    },
    async calls(filter) {
      return simulator.calls(filter);
    },
    async clearCalls() {
      simulator.clearCalls();
    },
  };
}

/**
 * `src/cli/gateway-sim.ts` in a child process on a free port, driven through its /__sim control API.
 * `stop()` ends it; so does this process's exit, should a bench die without stopping it.
 */
export async function startGatewayProcess(): Promise<BenchGateway & { stop(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli/gateway-sim.ts'], {
    cwd: new URL('..', import.meta.url),
    env: { ...process.env, GATEWAY_SIM_PORT: '0', GATEWAY_SIM_HOST: '127.0.0.1', AIGATEWAY_AUTH_VALUE: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  let url: string;
  try {
    url = await new Promise<string>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`gateway simulator did not start: ${output}`)), 30_000);
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`gateway simulator exited (${code}): ${output}`)));
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  child.stdout!.resume();
  const control = `${url}/__sim`;
  const agent = new Agent({ keepAlive: true });
  // PUTs through node:http with a keep-alive agent: seeding sends one per user (100,000 for expiry).
  const put = (path: string, body: string) =>
    new Promise<void>((resolve, reject) => {
      const call = request(
        `${control}${path}`,
        { method: 'PUT', agent, headers: { 'content-type': 'application/json' } },
        (response) => {
          response.resume();
          response.on('end', () =>
            response.statusCode === 200 ? resolve() : reject(new Error(`PUT ${path}: ${response.statusCode}`)),
          );
        },
      );
      call.on('error', reject);
      call.end(body);
    });
  const putUser = (userId: string, quota: Partial<GatewayUser>) => {
    const json: Record<string, string> = {};
    if (quota.total !== undefined) json.total = centsToDecimalString(quota.total);
    if (quota.used !== undefined) json.used = centsToDecimalString(quota.used);
    return put(`/users/${encodeURIComponent(userId)}`, JSON.stringify(json));
  };
  const getJson = async <T>(path: string, method = 'GET'): Promise<T> => {
    const response = await fetch(`${control}${path}`, { method });
    if (!response.ok) throw new Error(`${method} /__sim${path}: HTTP ${response.status}`);
    return (await response.json()) as T;
  };
  return {
    kind: 'process',
    url,
    where: 'in a process of its own',
    setUser: putUser,
    async setUsers(users) {
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < users.length) {
            const user = users[next++]!;
            await putUser(user.userId, user);
          }
        }),
      );
    },
    async users() {
      const state = await getJson<{ users: Record<string, { total: number; used: number }> }>('/state');
      return new Map(
        Object.entries(state.users).map(([id, user]) => [
          id,
          { total: decimalToCents(user.total), used: decimalToCents(user.used) },
        ]),
      );
    },
    async calls(filter = {}) {
      const query = new URLSearchParams(
        Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined),
      );
      const answer = await getJson<{ calls: (Omit<RecordedCall, 'at'> & { at: string })[] }>(`/calls?${query}`);
      return answer.calls.map((call) => ({ ...call, at: new Date(call.at) }));
    },
    async clearCalls() {
      await getJson('/calls', 'DELETE');
    },
    async stop() {
      agent.destroy();
      await stop();
    },
  };
}

/** An embedded PostgreSQL in a temp folder, removed on stop. */
export async function startOwnPostgres(name: string): Promise<{ url: string; stop(): Promise<void> }> {
  const folder = await mkdtemp(path.join(tmpdir(), `qm-bench-${name}-`));
  // As root the cluster runs as user postgres, who must be able to enter the folder (mkdtemp makes it 0700).
  await chmod(folder, 0o755);
  const database = await startEmbeddedPostgres({
    root: path.join(folder, 'data'),
    persistent: false,
    logger: silentLogger(),
  });
  return {
    url: database.url,
    async stop() {
      await database.stop();
      await rm(folder, { recursive: true, force: true });
    },
  };
}

function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function dropDatabase(serverUrl: string, databaseUrl: string): Promise<void> {
  const admin = createPool(withDatabase(serverUrl, 'postgres'), 1);
  try {
    const name = new URL(databaseUrl).pathname.slice(1);
    await admin.query(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end();
  }
}

/** Tokens for many users, minted a few at a time. */
export async function mintTokens(
  environment: Pick<BenchEnvironment, 'token'>,
  userIds: readonly string[],
  admin = false,
): Promise<Map<string, string>> {
  const tokens = new Map<string, string>();
  for (const userId of userIds) tokens.set(userId, await environment.token(userId, admin));
  return tokens;
}

// ---------------------------------------------------------------------------------------------------
// GraphQL over HTTP (fetch, keep-alive): the one client of every bench, server and baseline alike

/** A GraphQL error answer: `message` is the first error's code (failures are counted by it), `detail` its message. */
export class GraphqlError extends Error {
  constructor(
    code: string,
    readonly detail = '',
  ) {
    super(code);
  }
}

/** POSTs one operation; throws a GraphqlError whose message is the first error's code. */
export async function postGraphql<T = Record<string, unknown>>(
  url: string,
  token: string | null,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T; errors?: { message?: string; extensions?: { code?: string } }[] };
  if (body.errors) throw new GraphqlError(body.errors[0]?.extensions?.code ?? 'ERROR', body.errors[0]?.message);
  if (!response.ok || body.data === undefined) throw new GraphqlError(`HTTP ${response.status}`);
  return body.data;
}

// ---------------------------------------------------------------------------------------------------
// Driving load and reading latencies

export interface DriveRun<T> {
  name: string;
  completed: number;
  seconds: number;
  /** completed / seconds. */
  rate: number;
  /** Per successful operation, in ms, in completion order. */
  latency: number[];
  /** What each successful operation returned, in completion order. */
  values: T[];
  /** Failures by their error message (a GraphQL error code). */
  failures: Map<string, number>;
}

export interface DriveOptions {
  name: string;
  clients: number;
  /** Stop after this many operations… */
  total?: number;
  /** …or after this many seconds (whichever comes first; one of them is required). */
  seconds?: number;
}

/**
 * `clients` workers, each doing one operation after another (closed loop) until `total` operations
 * were started or `seconds` passed. `work(index)` runs one operation; its time is the latency.
 */
export async function drive<T>(options: DriveOptions, work: (index: number) => Promise<T>): Promise<DriveRun<T>> {
  if (options.total === undefined && options.seconds === undefined) throw new Error('drive needs total or seconds');
  const total = options.total ?? Number.POSITIVE_INFINITY;
  const run: DriveRun<T> = {
    name: options.name,
    completed: 0,
    seconds: 0,
    rate: 0,
    latency: [],
    values: [],
    failures: new Map(),
  };
  let next = 0;
  const started = performance.now();
  const deadline = options.seconds === undefined ? Number.POSITIVE_INFINITY : started + options.seconds * 1000;
  await Promise.all(
    Array.from({ length: options.clients }, async () => {
      while (next < total && performance.now() < deadline) {
        const index = next++;
        const begun = performance.now();
        try {
          const value = await work(index);
          run.latency.push(performance.now() - begun);
          run.values.push(value);
          run.completed += 1;
        } catch (error) {
          const code = error instanceof Error ? error.message : String(error);
          run.failures.set(code, (run.failures.get(code) ?? 0) + 1);
        }
      }
    }),
  );
  run.seconds = (performance.now() - started) / 1000;
  run.rate = run.completed / run.seconds;
  return run;
}

/** Several runs of the same thing (e.g. slices taken in turns with a baseline) as one. */
export function mergeRuns<T>(runs: readonly DriveRun<T>[]): DriveRun<T> {
  const merged: DriveRun<T> = {
    name: runs[0]?.name ?? '',
    completed: 0,
    seconds: 0,
    rate: 0,
    latency: [],
    values: [],
    failures: new Map(),
  };
  for (const run of runs) {
    merged.completed += run.completed;
    merged.seconds += run.seconds;
    // A loop, not push(...): spreading tens of thousands of arguments can overflow the stack.
    for (const latency of run.latency) merged.latency.push(latency);
    for (const value of run.values) merged.values.push(value);
    for (const [code, count] of run.failures) merged.failures.set(code, (merged.failures.get(code) ?? 0) + count);
  }
  merged.rate = merged.seconds > 0 ? merged.completed / merged.seconds : 0;
  return merged;
}

/** The value below which `fraction` of the sorted samples lie (nearest rank). */
export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

export function describeFailures(failures: Map<string, number>): string {
  return [...failures].map(([code, count]) => `${code}×${count}`).join(', ') || 'none';
}

// ---------------------------------------------------------------------------------------------------
// SQL statements the app sends (its MikroORM's knex emits one `query` event per statement)

interface KnexQueryEvent {
  sql?: string;
  /** Set by knex on statements run inside a transaction (begin and commit included). */
  __knexTxId?: string;
}

interface KnexLike {
  on(event: 'query', listener: (query: KnexQueryEvent) => void): unknown;
  off(event: 'query', listener: (query: KnexQueryEvent) => void): unknown;
}

export interface StatementCounter {
  /** Statements since start (or the last reset). */
  readonly count: number;
  /** Statements by their first word (select, insert, begin, …). */
  byVerb(): Record<string, number>;
  /** Statements of each transaction, in the order the transactions began (statements outside any left out). */
  byTransaction(): number[];
  reset(): void;
  stop(): void;
}

/**
 * Counts every SQL statement the app's ORM sends to PostgreSQL — entity queries, em.execute and
 * transaction begin/commit alike — through the knex instance under MikroORM. No mock: the statements
 * still run.
 */
export function countStatements(app: RunningApp): StatementCounter {
  const knex = app.services.orm.em.getConnection().getKnex() as unknown as KnexLike;
  let count = 0;
  let verbs = new Map<string, number>();
  let transactions = new Map<string, number>();
  const listener = (query: KnexQueryEvent) => {
    count += 1;
    const verb = (query.sql ?? '').trim().split(/\s+/, 1)[0]!.toLowerCase().replace(/;$/, '') || '?';
    verbs.set(verb, (verbs.get(verb) ?? 0) + 1);
    if (query.__knexTxId) transactions.set(query.__knexTxId, (transactions.get(query.__knexTxId) ?? 0) + 1);
  };
  knex.on('query', listener);
  return {
    get count() {
      return count;
    },
    byVerb: () => Object.fromEntries([...verbs].sort((a, b) => b[1] - a[1])),
    byTransaction: () => [...transactions.values()],
    reset() {
      count = 0;
      verbs = new Map();
      transactions = new Map();
    },
    stop() {
      knex.off('query', listener);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Requests an in-process HTTP server receives (e.g. the gateway simulator), seen from its side

export interface HttpServerWatch {
  /** Requests received and not yet answered now. */
  readonly inFlight: number;
  /** The most requests in flight at once since start (or the last reset). */
  readonly maxInFlight: number;
  /** Requests received since start (or the last reset). */
  readonly requests: number;
  /** performance.now() of the first request received / the last answer finished; null before any. */
  readonly firstStart: number | null;
  readonly lastFinish: number | null;
  reset(): void;
  stop(): void;
}

interface ServerRequestMessage {
  request?: { url?: string };
  socket?: { localPort?: number };
}

export interface WatchOptions {
  /** Only requests whose path (without the query) passes count; default: all. */
  accept?: (path: string) => boolean;
  /** Runs as each counted request arrives. */
  onRequest?: () => void;
}

/**
 * Watches the requests of the HTTP server listening on `port` in this process, through node:http's
 * diagnostics channels (no proxy, nothing changed in the server): how many are in flight at once and
 * when the first arrived.
 */
export function watchHttpServer(port: number, options: WatchOptions = {}): HttpServerWatch {
  const state = {
    inFlight: 0,
    maxInFlight: 0,
    requests: 0,
    firstStart: null as number | null,
    lastFinish: null as number | null,
  };
  const accept = options.accept ?? (() => true);
  const ours = (message: unknown) => {
    const { request, socket } = message as ServerRequestMessage;
    return socket?.localPort === port && accept((request?.url ?? '').split('?', 1)[0]!);
  };
  const started = (message: unknown) => {
    if (!ours(message)) return;
    state.requests += 1;
    state.inFlight += 1;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    state.firstStart ??= performance.now();
    options.onRequest?.();
  };
  const finished = (message: unknown) => {
    if (!ours(message)) return;
    state.inFlight = Math.max(0, state.inFlight - 1);
    state.lastFinish = performance.now();
  };
  diagnostics.subscribe('http.server.request.start', started);
  diagnostics.subscribe('http.server.response.finish', finished);
  return {
    get inFlight() {
      return state.inFlight;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    get requests() {
      return state.requests;
    },
    get firstStart() {
      return state.firstStart;
    },
    get lastFinish() {
      return state.lastFinish;
    },
    reset() {
      state.maxInFlight = state.inFlight;
      state.requests = 0;
      state.firstStart = null;
      state.lastFinish = null;
    },
    stop() {
      diagnostics.unsubscribe('http.server.request.start', started);
      diagnostics.unsubscribe('http.server.response.finish', finished);
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Memory

export interface MemoryPeak {
  rss: number;
  heap: number;
  /** Largest heap still in use right after a full GC (needs `node --expose-gc`); 0 without it. */
  liveHeap: number;
}

/**
 * Samples memory every 50 ms while something runs, and once a second (with --expose-gc) forces a full
 * collection and records the live heap. `onCollect` runs before each collection (e.g. to empty the
 * simulator's call log, which lives in this process too and is not the measured code's memory).
 */
export function sampleMemory(onCollect?: () => void): { stop(): MemoryPeak } {
  const peak: MemoryPeak = { rss: 0, heap: 0, liveHeap: 0 };
  const sample = () => {
    const usage = process.memoryUsage();
    peak.rss = Math.max(peak.rss, usage.rss);
    peak.heap = Math.max(peak.heap, usage.heapUsed);
  };
  const collect = () => {
    onCollect?.();
    if (!global.gc) return;
    global.gc();
    peak.liveHeap = Math.max(peak.liveHeap, process.memoryUsage().heapUsed);
  };
  sample();
  const sampler = setInterval(sample, 50);
  const collector = setInterval(collect, 1000);
  return {
    stop() {
      clearInterval(sampler);
      clearInterval(collector);
      sample();
      collect();
      return { ...peak };
    },
  };
}

export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const toMb = (bytes: number): number => round(bytes / 1024 / 1024, 1);

// ---------------------------------------------------------------------------------------------------
// Ledger invariants (SPEC §11)

/**
 * SPEC §11 for every user the ledger knows (the checks of test/support/ledger-invariants.ts, the one
 * implementation): the gateway totals come from one snapshot of the simulator, wherever it runs (a
 * simulator in this process is taken as is). Returns the violations found (empty = all hold).
 */
export async function ledgerViolations(
  pool: PgPool,
  gateway: BenchGateway | GatewaySimulator,
  options: InvariantOptions = {},
): Promise<string[]> {
  const gatewayUsers = await (gateway instanceof GatewaySimulator ? inProcessGateway(gateway) : gateway).users();
  return checkLedgerInvariants(
    async <Row>(sql: string) => (await pool.query(sql)).rows as Row[],
    // The gateway reads a user it never heard of as 0.
    (userId) => gatewayUsers.get(userId)?.total ?? 0,
    options,
  );
}

/** Prints the violations (at most 20) and marks the process failed when there are any. */
export function reportViolations(log: (line: string) => void, violations: readonly string[]): void {
  log(`Invariant violations: ${violations.length}`);
  for (const violation of violations.slice(0, 20)) log(`  ${violation}`);
  if (violations.length > 0) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------------
// Printing

export function round(value: number, digits = 0): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export const fixed = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');

/** Percent with one decimal: 0.2531 → "25.3%". */
export const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;

/** A plain-text table with aligned columns. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** The runner's short table: one row per bench. */
export function formatResultTable(results: readonly BenchResult[]): string {
  return formatTable(
    ['bench', 'ratio', 'target', 'met', 'baseline'],
    results.map((result) => [
      result.name,
      result.ratio === null ? '–' : result.ratio.toFixed(3),
      result.target || '–',
      result.met === null ? '–' : result.met ? 'yes' : 'NO',
      String(result.baseline),
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------
// The floor of "GraphQL over HTTP in Node": a bare Apollo server with the app's schema

/** Resolvers of the bare server: type name → field → what it answers (fixed data, no work). */
export type BareResolvers = Record<string, Record<string, () => unknown>>;

/**
 * A bare Apollo server (`startStandaloneServer`) built from the app's schema SDL, whose resolvers return
 * fixed answers: the same documents and clients cost it only parsing, validation, execution and HTTP
 * — no auth, no limits, no database, no gateway. Baselines measure the server against it.
 */
export async function startBareApollo(resolvers: BareResolvers): Promise<{ url: string; stop(): Promise<void> }> {
  const typeDefs = printSchema(await buildApiSchema());
  const server = new ApolloServer({
    typeDefs,
    // As the app (GRAPHQL_INTROSPECTION defaults to true): otherwise NODE_ENV=production would add
    // Apollo's NoIntrospection rule to the baseline only.
    introspection: true,
    resolvers,
  });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return { url, stop: () => server.stop() };
}
