import 'reflect-metadata';
import type { RunningApp } from '../src/app.js';
import { endOfMonth } from '../src/clock.js';
import type { GatewaySimulator } from '../src/modules/gateway/simulator/gateway-simulator.js';
import { StrategyType } from '../src/modules/strategies/strategy.types.js';
import {
  BENCH_ZONE,
  type BenchEnvironment,
  type BenchOptions,
  type BenchResult,
  envInt,
  ledgerViolations,
  type MemoryPeak,
  mb,
  type PgPool,
  percent,
  reportViolations,
  resolveOptions,
  round,
  runIfMain,
  sampleMemory,
  startBenchEnvironment,
  toMb,
} from './support.js';

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
 *   execution, Σ), RAW_CONCURRENCY at a time, no gateway.
 * The server's grants/s over each baseline's is printed as a ratio (target: ≥ 30% of raw bulk).
 * Ledger invariants are checked last.
 *
 * Settings (environment): BENCH_USERS (100000; quick 5000), BENCH_SMALL (10000; quick 1000),
 * BENCH_QUICK=1 for a smoke run. Run with `node --expose-gc` (the npm script does) to also see the live
 * heap after full collections.
 */

const RAW_PER_GRANT_SAMPLE = 5_000;
const RAW_CONCURRENCY = 8;
const TARGET_RATIO = 0.3;

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
  // The simulator, in this process too, logs every call it receives: the log is counted (quota-le
  // look-ups) and emptied every second so that it does not pass for the scan's memory.
  let lookups = 0;
  const memory = sampleMemory(() => {
    lookups += simulator.calls({ route: 'getTotal' }).length;
    simulator.clearCalls();
  });
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
  return { users, seconds, grants: row.succeeded, failed: row.failed, gatewayLookups: lookups, peak, heapBefore };
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

export async function run(options: BenchOptions = {}): Promise<BenchResult> {
  const { quick, log } = resolveOptions(options);
  const large = envInt('BENCH_USERS', quick ? 5_000 : 100_000);
  const small = Math.min(envInt('BENCH_SMALL', quick ? 1_000 : 10_000), large);
  let environment: BenchEnvironment | undefined;
  try {
    environment = await startBenchEnvironment({ name: 'scan', options, listen: false });
    const { app, simulator, pool } = environment;
    log(
      `Scan benchmark: PostgreSQL ${environment.postgresVersion} (embedded), gateway simulator over HTTP, node ${process.version}` +
        `${global.gc ? ', --expose-gc' : ''}${quick ? ', quick' : ''}\n`,
    );

    await fillDirectory(pool, 1, small);
    const smallScan = await scanPhase(app, simulator, small, 'small');
    log(describeScan(smallScan));
    await fillDirectory(pool, small + 1, large);
    const largeScan = await scanPhase(app, simulator, large, 'large');
    log(describeScan(largeScan));
    log(
      `  memory ${small.toLocaleString('en')} → ${large.toLocaleString('en')} users: peak RSS ${mb(smallScan.peak.rss)} → ${mb(largeScan.peak.rss)}, ` +
        `peak heap ${mb(smallScan.peak.heap)} → ${mb(largeScan.peak.heap)}` +
        (global.gc ? `, peak live heap ${mb(smallScan.peak.liveHeap)} → ${mb(largeScan.peak.liveHeap)}` : '') +
        '\n',
    );

    const expiry = endOfMonth(new Date(), BENCH_ZONE, 1);
    const serverRate = largeScan.grants / largeScan.seconds;
    const bulkRate = await rawBulk(pool, largeScan.grants, expiry);
    const [probe] = (await pool.query<{ id: string }>(`select id::text from quota_strategy order by id limit 1`)).rows;
    const perGrantRate = await rawPerGrant(pool, Math.min(RAW_PER_GRANT_SAMPLE, largeScan.grants), expiry, probe!.id);
    const ratio = serverRate / bulkRate;
    log(`Raw SQL, the same batch and audit rows:`);
    log(`  bulk INSERTs (1,000 rows a statement): ${bulkRate.toFixed(0)} grants/s`);
    log(`  one transaction per grant (${RAW_CONCURRENCY} at a time, no gateway): ${perGrantRate.toFixed(0)} grants/s`);
    log(
      `  server / raw bulk: ${ratio.toFixed(3)} (${percent(ratio)}); ` +
        `server / raw per grant: ${(serverRate / perGrantRate).toFixed(3)} (${percent(serverRate / perGrantRate)})\n`,
    );

    const violations = await ledgerViolations(pool, simulator, { offGateway: (userId) => userId.startsWith('raw-') });
    reportViolations(log, violations);
    return {
      name: 'scan',
      figures: {
        users: large,
        seconds: round(largeScan.seconds, 1),
        grants: largeScan.grants,
        failed: largeScan.failed,
        grantsPerSecond: round(serverRate, 1),
        userStrategyPairsPerSecond: round((large * STRATEGIES.length) / largeScan.seconds),
        gatewayLookups: largeScan.gatewayLookups,
        rawBulkGrantsPerSecond: round(bulkRate),
        rawPerGrantGrantsPerSecond: round(perGrantRate),
        ratioToRawPerGrant: round(serverRate / perGrantRate, 3),
        [`peakRssMbAt${small}`]: toMb(smallScan.peak.rss),
        [`peakRssMbAt${large}`]: toMb(largeScan.peak.rss),
        ...(global.gc
          ? {
              [`peakLiveHeapMbAt${small}`]: toMb(smallScan.peak.liveHeap),
              [`peakLiveHeapMbAt${large}`]: toMb(largeScan.peak.liveHeap),
            }
          : {}),
        invariantViolations: violations.length,
      },
      baseline: `raw bulk INSERT ${bulkRate.toFixed(0)} grants/s`,
      ratio: round(ratio, 3),
      target: `server/raw bulk ≥ ${TARGET_RATIO}`,
      met: ratio >= TARGET_RATIO,
    };
  } finally {
    await environment?.stop();
  }
}

runIfMain(import.meta.url, run);
