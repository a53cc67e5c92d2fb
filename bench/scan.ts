import 'reflect-metadata';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type RunningApp, startApp } from '../src/app.js';
import { endOfMonth } from '../src/clock.js';
import { loadConfig } from '../src/config.js';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { silentLogger } from '../src/logger.js';
import { GatewaySimulator } from '../src/modules/gateway/simulator/gateway-simulator.js';
import { StrategyType } from '../src/modules/strategies/strategy.types.js';
import { decimalToCents } from '../src/money.js';

/**
 * Strategy scan benchmark (`npm run bench:scan`): an in-process server on an embedded PostgreSQL and
 * the gateway simulator over HTTP. The directory is filled to BENCH_SMALL (10,000) users, five single
 * strategies are scanned (three decided in SQL, two that need the gateway's remaining quota for part
 * of the users), then the directory grows to BENCH_USERS (100,000) and five fresh strategies are
 * scanned again — so the figures, above all peak memory, can be compared at both sizes.
 *
 * In the same run and database, two raw-SQL baselines write the same rows without the server:
 * - bulk: the batch and audit rows of every grant as multi-row INSERTs (1,000 rows per statement);
 * - per grant: one transaction per user with the statements a grant runs (lock, upsert batch, audit,
 *   execution, Σ), BENCH_CONCURRENCY at a time, no gateway.
 * The server's grants/s over each baseline's is printed as a ratio. Ledger invariants are checked last.
 *
 * Settings (environment): BENCH_USERS (100000), BENCH_SMALL (10000). Run with `node --expose-gc` (the npm
 * script does) to also see the live heap after full collections.
 */

const LARGE = envInt('BENCH_USERS', 100_000);
const SMALL = Math.min(envInt('BENCH_SMALL', 10_000), LARGE);
const RAW_PER_GRANT_SAMPLE = 5_000;
const RAW_CONCURRENCY = 8;
const ZONE = 'Asia/Shanghai';

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${name} must be a positive whole number`);
  return parsed;
}

/** The few pg calls used here (pg ships no types of its own; @mikro-orm/postgresql depends on it). */
interface PgClient {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  release(): void;
}
interface PgPool {
  connect(): Promise<PgClient>;
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): void;
}
const pg = createRequire(import.meta.url)('pg') as {
  Pool: new (options: { connectionString: string; max: number }) => PgPool;
};

/**
 * Users `u0000001`…: vip = i mod 5, company by i mod 4, every tenth starred zgsm-ai.zgsm, registered
 * over two years from 2024-01-01. Each strategy below matches roughly a tenth to a fifth of them.
 */
async function fillDirectory(pool: PgPool, from: number, to: number): Promise<void> {
  for (let start = from; start <= to; start += 50_000) {
    const end = Math.min(to, start + 49_999);
    await pool.query(
      `insert into auth_users (id, name, vip, company, github_star, employee_number, created_at, access_time)
       select 'u' || lpad(i::text, 7, '0'), 'Bench user ' || i, i % 5,
              (array['Acme', 'Globex', 'Initech', 'Umbrella'])[i % 4 + 1],
              case when i % 10 = 0 then 'zgsm-ai.zgsm, openai.gpt-4' else 'openai.gpt-4' end,
              null, timestamptz '2024-01-01 00:00:00+08' + (i % 730) * interval '1 day',
              timestamptz '2026-01-01 00:00:00+08' + (i % 300) * interval '1 day'
       from generate_series($1::int, $2::int) as i`,
      [start, end],
    );
  }
}

const STRATEGIES: { suffix: string; condition: string; amount: number; gateway: boolean }[] = [
  { suffix: 'vip-acme', condition: 'and(is-vip(3), belong-to("Acme"))', amount: 5, gateway: false },
  { suffix: 'stargazers', condition: 'github-star("zgsm-ai.zgsm")', amount: 3, gateway: false },
  {
    suffix: 'early-non-globex',
    condition: 'register-before("2024-03-13") and not belong-to("Globex")',
    amount: 2,
    gateway: false,
  },
  { suffix: 'vip4-low-balance', condition: 'and(is-vip(4), quota-le("gpt-4", 100))', amount: 1.5, gateway: true },
  { suffix: 'initech-empty', condition: 'and(belong-to("Initech"), quota-le("gpt-4", 0))', amount: 1, gateway: true },
];

interface MemoryPeak {
  rss: number;
  heap: number;
  /** Largest heap still in use right after a full GC (with --expose-gc): what the scan really holds. */
  liveHeap: number;
}

/**
 * Samples memory while a scan runs. The simulator, in this process too, logs every call it receives;
 * the log is counted (quota-le look-ups) and emptied every second so that it does not pass for the
 * scan's memory.
 */
function sampleMemory(simulator: GatewaySimulator): { stop(): MemoryPeak & { lookups: number } } {
  const peak: MemoryPeak = { rss: 0, heap: 0, liveHeap: 0 };
  const sample = () => {
    const usage = process.memoryUsage();
    peak.rss = Math.max(peak.rss, usage.rss);
    peak.heap = Math.max(peak.heap, usage.heapUsed);
  };
  let lookups = 0;
  const collect = () => {
    lookups += simulator.calls({ route: 'getTotal' }).length;
    simulator.clearCalls();
    if (!global.gc) return;
    global.gc();
    peak.liveHeap = Math.max(peak.liveHeap, process.memoryUsage().heapUsed);
  };
  sample();
  const timer = setInterval(sample, 50);
  const collector = setInterval(collect, 1000);
  return {
    stop() {
      clearInterval(timer);
      clearInterval(collector);
      sample();
      collect();
      return { ...peak, lookups };
    },
  };
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

interface ScanResult {
  users: number;
  seconds: number;
  grants: number;
  failed: number;
  gatewayLookups: number;
  peak: MemoryPeak;
  heapBefore: number;
}

async function scanPhase(
  app: RunningApp,
  simulator: GatewaySimulator,
  users: number,
  label: string,
): Promise<ScanResult> {
  const em = app.services.orm.em.fork();
  const strategies = app.services.strategies;
  // Earlier phases' strategies stay out of this scan.
  await em.execute(`update quota_strategy set status = false`);
  for (const strategy of STRATEGIES) {
    await strategies.createStrategy(em, 'bench', {
      name: `${label}-${strategy.suffix}`,
      title: strategy.suffix,
      type: StrategyType.SINGLE,
      amount: strategy.amount,
      condition: strategy.condition,
    });
  }
  simulator.clearCalls();
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const memory = sampleMemory(simulator);
  const started = performance.now();
  const run = await app.services.jobs.triggerScan('STRATEGY', 'bench');
  await app.services.jobs.runner.waitFor(run.id);
  const seconds = (performance.now() - started) / 1000;
  const peak = memory.stop();
  const [row] = await em.execute<{ status: string; succeeded: number; failed: number; error: string | null }[]>(
    'select status, succeeded, failed, error from job_run where id = ?',
    [run.id],
  );
  if (row?.status !== 'SUCCEEDED') throw new Error(`scan ${row?.status}: ${row?.error}`);
  return {
    users,
    seconds,
    grants: row.succeeded,
    failed: row.failed,
    gatewayLookups: peak.lookups,
    peak,
    heapBefore,
  };
}

function describeScan(result: ScanResult): string {
  const scanned = result.users * STRATEGIES.length;
  return [
    `${result.users.toLocaleString('en')} users × ${STRATEGIES.length} strategies in ${result.seconds.toFixed(1)} s:`,
    `  ${(scanned / result.seconds).toFixed(0)} user-strategy pairs/s (${(result.users / result.seconds).toFixed(0)} users/s through all five), ` +
      `${result.grants} grants = ${(result.grants / result.seconds).toFixed(1)} grants/s, ${result.failed} failed, ` +
      `${result.gatewayLookups} gateway look-ups for quota-le`,
    `  peak RSS ${mb(result.peak.rss)}, peak heap ${mb(result.peak.heap)}` +
      (global.gc
        ? `, peak live heap after GC ${mb(result.peak.liveHeap)} (${mb(result.heapBefore)} before the scan)`
        : ' (run with --expose-gc for the live heap)'),
  ].join('\n');
}

/** The batch and audit rows of `grants` grants as multi-row INSERTs, 1,000 rows a statement. */
async function rawBulk(pool: PgPool, grants: number, expiry: Date): Promise<number> {
  const started = performance.now();
  for (let start = 0; start < grants; start += 1000) {
    const ids = Array.from({ length: Math.min(1000, grants - start) }, (_, index) => `raw-bulk-${start + index}`);
    await pool.query(
      `insert into quota (user_id, amount, expiry_date, status, create_time, update_time)
       select id, 5, $2, 'VALID', now(), now() from unnest($1::text[]) as id`,
      [ids, expiry],
    );
    await pool.query(
      `insert into quota_audit (user_id, amount, operation, strategy_id, strategy_name, expiry_date, details, actor, create_time)
       select id, 5, 'RECHARGE', 1, 'raw', $2, '{"operation":"RECHARGE"}', 'raw', now() from unnest($1::text[]) as id`,
      [ids, expiry],
    );
  }
  return grants / ((performance.now() - started) / 1000);
}

/** One transaction per grant with a grant's statements, RAW_CONCURRENCY at a time, no gateway. */
async function rawPerGrant(pool: PgPool, grants: number, expiry: Date, strategyId: string): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: RAW_CONCURRENCY }, async () => {
      while (next < grants) {
        const userId = `raw-grant-${next++}`;
        const claimed = await pool.query<{ id: string }>(
          `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, single)
           values ($1, $2, '20260101000000', 'processing', $3, 5, 'raw', true) on conflict do nothing returning id`,
          [strategyId, userId, expiry],
        );
        const client = await pool.connect();
        try {
          await client.query('begin');
          await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`quota-ledger:${userId}`]);
          await client.query(
            `insert into quota (user_id, amount, expiry_date, status, create_time, update_time) values ($1, 5, $2, 'VALID', now(), now())
             on conflict (user_id, expiry_date) where status = 'VALID' do update set amount = quota.amount + excluded.amount
             returning id, user_id, amount, expiry_date, status, create_time`,
            [userId, expiry],
          );
          await client.query(
            `insert into quota_audit (user_id, amount, operation, strategy_id, strategy_name, expiry_date, details, actor, create_time)
             values ($1, 5, 'RECHARGE', $2, 'raw', $3, '{"operation":"RECHARGE"}', 'raw', now()) returning *`,
            [userId, strategyId, expiry],
          );
          await client.query(`update quota_execute set status = 'completed' where id = $1 and status = 'processing'`, [
            claimed.rows[0]!.id,
          ]);
          await client.query(`select coalesce(sum(amount), 0) from quota where user_id = $1 and status = 'VALID'`, [
            userId,
          ]);
          await client.query('commit');
        } finally {
          client.release();
        }
      }
    }),
  );
  return grants / ((performance.now() - started) / 1000);
}

/** SPEC §11 over the server's users (the raw baselines' rows never reach the gateway and are left out). */
async function ledgerViolations(pool: PgPool, simulator: GatewaySimulator): Promise<string[]> {
  const violations: string[] = [];
  const users = await pool.query<{ user_id: string; valid: string; audited: string }>(
    `select u.user_id,
            coalesce((select sum(amount) from quota q where q.user_id = u.user_id and q.status = 'VALID'), 0)::text as valid,
            coalesce((select sum(amount) from quota_audit a where a.user_id = u.user_id), 0)::text as audited
       from (select user_id from quota union select user_id from quota_audit) u where u.user_id not like 'raw-%'`,
  );
  for (const user of users.rows) {
    const valid = decimalToCents(user.valid);
    if (decimalToCents(user.audited) !== valid) violations.push(`${user.user_id}: Σ audits ≠ Σ VALID`);
    if (simulator.getUser(user.user_id).total !== valid) violations.push(`${user.user_id}: gateway total ≠ Σ VALID`);
  }
  const twice = await pool.query<{ n: string }>(
    `select count(*)::text as n from (select 1 from quota_execute e join quota_strategy s on s.id = e.strategy_id
       where s.type = 'single' and e.status = 'completed' and e.fire_key <> 'raw'
       group by e.strategy_id, e.user_id having count(*) > 1) twice`,
  );
  if (Number(twice.rows[0]!.n) > 0) violations.push(`${twice.rows[0]!.n} users granted twice by a single strategy`);
  return violations;
}

async function main(): Promise<void> {
  const folder = await mkdtemp(path.join(tmpdir(), 'qm-bench-scan-'));
  // As root the cluster runs as user postgres, who must be able to enter the folder (mkdtemp makes it 0700).
  await chmod(folder, 0o755);
  const logger = silentLogger();
  const database = await startEmbeddedPostgres({ root: path.join(folder, 'data'), persistent: false, logger });
  const simulator = new GatewaySimulator();
  let app: RunningApp | undefined;
  let pool: PgPool | undefined;
  try {
    const databaseUrl = database.url.replace(/\/postgres$/, '/bench_scan');
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      AIGATEWAY_URL: await simulator.start(0),
      AUTH_JWT_SECRET: 'bench-jwt-secret-that-is-at-least-32-bytes',
      VOUCHER_SIGNING_KEY: 'bench-voucher-key-that-is-at-least-32-bytes',
      TZ_NAME: ZONE,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    config.port = 0;
    app = await startApp({ config, logger, schedule: false, listen: false });
    pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
    pool.on('error', () => undefined);
    const version = (await pool.query<{ server_version: string }>('show server_version')).rows[0]!.server_version;
    console.log(
      `Scan benchmark: PostgreSQL ${version} (embedded), gateway simulator over HTTP, node ${process.version}` +
        `${global.gc ? ', --expose-gc' : ''}\n`,
    );

    await fillDirectory(pool, 1, SMALL);
    const small = await scanPhase(app, simulator, SMALL, 'small');
    console.log(describeScan(small));
    await fillDirectory(pool, SMALL + 1, LARGE);
    const large = await scanPhase(app, simulator, LARGE, 'large');
    console.log(describeScan(large));
    console.log(
      `  memory ${SMALL.toLocaleString('en')} → ${LARGE.toLocaleString('en')} users: peak RSS ${mb(small.peak.rss)} → ${mb(large.peak.rss)}, ` +
        `peak heap ${mb(small.peak.heap)} → ${mb(large.peak.heap)}` +
        (global.gc ? `, peak live heap ${mb(small.peak.liveHeap)} → ${mb(large.peak.liveHeap)}` : '') +
        '\n',
    );

    const expiry = endOfMonth(new Date(), ZONE, 1);
    const serverRate = large.grants / large.seconds;
    const bulkRate = await rawBulk(pool, large.grants, expiry);
    const [probe] = (await pool.query<{ id: string }>(`select id::text from quota_strategy order by id limit 1`)).rows;
    const perGrantRate = await rawPerGrant(pool, Math.min(RAW_PER_GRANT_SAMPLE, large.grants), expiry, probe!.id);
    console.log(`Raw SQL, the same batch and audit rows:`);
    console.log(`  bulk INSERTs (1,000 rows a statement): ${bulkRate.toFixed(0)} grants/s`);
    console.log(
      `  one transaction per grant (${RAW_CONCURRENCY} at a time, no gateway): ${perGrantRate.toFixed(0)} grants/s`,
    );
    console.log(
      `  server / raw bulk: ${(serverRate / bulkRate).toFixed(3)} (${((serverRate / bulkRate) * 100).toFixed(1)}%); ` +
        `server / raw per grant: ${(serverRate / perGrantRate).toFixed(3)} (${((serverRate / perGrantRate) * 100).toFixed(1)}%)\n`,
    );

    const violations = await ledgerViolations(pool, simulator);
    console.log(`Invariant violations: ${violations.length}`);
    for (const violation of violations.slice(0, 20)) console.log(`  ${violation}`);
    if (violations.length > 0) process.exitCode = 1;
  } finally {
    await pool?.end();
    await app?.stop();
    await simulator.stop();
    await database.stop();
    await rm(folder, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
