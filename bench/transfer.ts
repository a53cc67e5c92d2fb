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
import { mintToken } from '../src/modules/auth/token-verifier.js';
import { GatewaySimulator } from '../src/modules/gateway/simulator/gateway-simulator.js';
import { VoucherCodec } from '../src/modules/vouchers/voucher-codec.js';
import { type Cents, centsToAmount, centsToDecimalString, decimalToCents } from '../src/money.js';

/**
 * Transfer benchmark (`npm run bench:transfer`): an in-process server on an embedded PostgreSQL and a
 * gateway simulator; BENCH_CLIENTS concurrent GraphQL clients doing transferOut + transferIn pairs over
 * real HTTP with verified tokens. In the same run and database, a raw-SQL baseline does the same
 * database work (lock, update, insert) through a pg pool without the server, and the ratio is printed.
 * A hot-giver variant sends every transfer from one giver. The ledger invariants are checked at the end.
 *
 * Settings (environment): BENCH_USERS (1000), BENCH_CLIENTS (32), BENCH_PAIRS (2000), BENCH_HOT_PAIRS (1000).
 */

const USERS = envInt('BENCH_USERS', 1000);
const CLIENTS = envInt('BENCH_CLIENTS', 32);
const PAIRS = envInt('BENCH_PAIRS', 2000);
const HOT_PAIRS = envInt('BENCH_HOT_PAIRS', 1000);
const JWT_SECRET = 'bench-jwt-secret-that-is-at-least-32-bytes';
const VOUCHER_KEY = 'bench-voucher-key-that-is-at-least-32-bytes';
const ZONE = 'Asia/Shanghai';
const START_BALANCE: Cents = 100_000; // 1000.00 per user
const HOT_BALANCE: Cents = 100_000_000;

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

interface Run {
  name: string;
  pairs: number;
  seconds: number;
  pairLatency: number[];
  outLatency: number[];
  inLatency: number[];
  failures: Map<string, number>;
}

function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

function describeRun(run: Run): string {
  const pairs = [...run.pairLatency].sort((a, b) => a - b);
  const outs = [...run.outLatency].sort((a, b) => a - b);
  const ins = [...run.inLatency].sort((a, b) => a - b);
  const failures = [...run.failures].map(([code, count]) => `${code}×${count}`).join(', ') || 'none';
  return [
    `${run.name}: ${run.pairs} transfers in ${run.seconds.toFixed(2)} s = ${(run.pairs / run.seconds).toFixed(1)} transfers/s`,
    `  transfer (out+in) latency p50 ${percentile(pairs, 0.5).toFixed(1)} ms, p99 ${percentile(pairs, 0.99).toFixed(1)} ms`,
    `  transferOut p50 ${percentile(outs, 0.5).toFixed(1)} ms, p99 ${percentile(outs, 0.99).toFixed(1)} ms; ` +
      `transferIn p50 ${percentile(ins, 0.5).toFixed(1)} ms, p99 ${percentile(ins, 0.99).toFixed(1)} ms`,
    `  failed: ${failures}`,
  ].join('\n');
}

/** Runs `total` pairs on `clients` workers; `pair(index)` returns [outMs, inMs] or throws a code. */
async function drive(
  name: string,
  total: number,
  clients: number,
  pair: (index: number) => Promise<[number, number]>,
): Promise<Run> {
  const run: Run = { name, pairs: 0, seconds: 0, pairLatency: [], outLatency: [], inLatency: [], failures: new Map() };
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        const index = next++;
        const begun = performance.now();
        try {
          const [outMs, inMs] = await pair(index);
          run.outLatency.push(outMs);
          run.inLatency.push(inMs);
          run.pairLatency.push(performance.now() - begun);
          run.pairs += 1;
        } catch (error) {
          const code = error instanceof Error ? error.message : String(error);
          run.failures.set(code, (run.failures.get(code) ?? 0) + 1);
        }
      }
    }),
  );
  run.seconds = (performance.now() - started) / 1000;
  return run;
}

/** Two distinct users of `count`, or the hot giver and someone else. */
function pickPair(prefix: string, count: number, hot: boolean): [string, string] {
  const giver = hot ? 0 : Math.floor(Math.random() * count);
  let receiver = Math.floor(Math.random() * count);
  while (receiver === giver) receiver = Math.floor(Math.random() * count);
  return [`${prefix}${giver}`, `${prefix}${receiver}`];
}

const randomCents = (): Cents => 1 + Math.floor(Math.random() * 100);

// ---------------------------------------------------------------------------------------------------
// Through the server

const TRANSFER_OUT = `mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }`;
const TRANSFER_IN = `mutation($code: String!) { transferIn(voucherCode: $code) { status } }`;

async function graphql(url: string, token: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as {
    data?: Record<string, Record<string, string>>;
    errors?: { extensions?: { code?: string } }[];
  };
  if (body.errors) throw new Error(body.errors[0]?.extensions?.code ?? 'ERROR');
  return body.data!;
}

function serverPair(app: RunningApp, tokens: Map<string, string>, expiry: Date, hot: boolean) {
  return async (): Promise<[number, number]> => {
    const [giver, receiver] = pickPair('user-', USERS, hot);
    const t0 = performance.now();
    const out = await graphql(app.url, tokens.get(giver)!, TRANSFER_OUT, {
      input: {
        receiverId: receiver,
        items: [{ amount: centsToAmount(randomCents()), expiryDate: expiry.toISOString() }],
      },
    });
    const t1 = performance.now();
    const redeemed = await graphql(app.url, tokens.get(receiver)!, TRANSFER_IN, { code: out.transferOut!.voucherCode });
    if (redeemed.transferIn!.status !== 'SUCCESS') throw new Error(`transferIn ${redeemed.transferIn!.status}`);
    return [t1 - t0, performance.now() - t1];
  };
}

// ---------------------------------------------------------------------------------------------------
// The raw-SQL baseline: the same statements the ledger runs, through a pg pool, no server, no gateway

async function inTransaction<T>(pool: PgPool, userId: string, work: (client: PgClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [`quota-ledger:${userId}`]);
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

function baselinePair(pool: PgPool, codec: VoucherCodec, expiry: Date, hot: boolean) {
  return async (): Promise<[number, number]> => {
    const [giver, receiver] = pickPair('raw-', USERS, hot);
    const amount = randomCents();
    const t0 = performance.now();
    const code = await inTransaction(pool, giver, async (client) => {
      const batches = await client.query<{ id: string; amount: string; expiry_date: Date }>(
        `select id, amount, expiry_date from quota where user_id = $1 and status = 'VALID' order by expiry_date, id for update`,
        [giver],
      );
      const batch = batches.rows.find((row) => new Date(row.expiry_date).getTime() === expiry.getTime());
      if (!batch) throw new Error('QUOTA_NOT_FOUND');
      if (decimalToCents(batch.amount) < amount) throw new Error('INSUFFICIENT_QUOTA');
      const left = await client.query<{ amount: string }>(
        `update quota set amount = amount - $1, update_time = now() where id = $2 and amount >= $1 returning amount`,
        [centsToDecimalString(amount), batch.id],
      );
      if (decimalToCents(left.rows[0]!.amount) === 0) await client.query('delete from quota where id = $1', [batch.id]);
      const now = Math.floor(Date.now() / 1000);
      let voucher = '';
      // The same distinct-code rule as the server: step the timestamp back until the code is new.
      for (let step = 0; voucher === ''; step++) {
        const candidate = codec.encode({
          giverId: giver,
          giverName: '',
          giverPhone: '',
          giverGithub: '',
          giverGithubStar: '',
          receiverId: receiver,
          items: [{ amount, expiryDate: expiry }],
          timestamp: now - step,
        });
        const taken = await client.query(
          `select 1 from quota_audit where user_id = $1 and create_time >= $2 and operation = 'TRANSFER_OUT'
              and voucher_code = $3 limit 1`,
          [giver, new Date((now - step - 3600) * 1000), candidate],
        );
        if (taken.rows.length === 0) voucher = candidate;
      }
      await client.query(
        `insert into quota_audit (user_id, amount, operation, voucher_code, related_user, expiry_date, details, create_time)
         values ($1, $2, 'TRANSFER_OUT', $3, $4, $5, '{}', now())`,
        [giver, centsToDecimalString(-amount), voucher, receiver, expiry],
      );
      await client.query(`select coalesce(sum(amount), 0) from quota where user_id = $1 and status = 'VALID'`, [giver]);
      return voucher;
    });
    const t1 = performance.now();
    codec.decode(code, new Date());
    await pool.query('select 1 from voucher_redemption where md5(voucher_code) = md5($1) and voucher_code = $1', [
      code,
    ]);
    await inTransaction(pool, receiver, async (client) => {
      const inserted = await client.query<{ id: string }>(
        `insert into voucher_redemption (voucher_code, receiver_id, create_time) values ($1, $2, now())
         on conflict do nothing returning id`,
        [code, receiver],
      );
      if (inserted.rows.length === 0) throw new Error('ALREADY_REDEEMED');
      await client.query(
        `insert into quota (user_id, amount, expiry_date, status, create_time, update_time)
         values ($1, $2, $3, 'VALID', now(), now())
         on conflict (user_id, expiry_date) where status = 'VALID'
         do update set amount = quota.amount + excluded.amount, update_time = excluded.update_time returning id`,
        [receiver, centsToDecimalString(amount), expiry],
      );
      await client.query(
        `insert into quota_audit (user_id, amount, operation, voucher_code, related_user, expiry_date, details, create_time)
         values ($1, $2, 'TRANSFER_IN', $3, $4, $5, '{}', now())`,
        [receiver, centsToDecimalString(amount), code, giver, expiry],
      );
      await client.query(`select coalesce(sum(amount), 0) from quota where user_id = $1 and status = 'VALID'`, [
        receiver,
      ]);
      await client.query(`update voucher_redemption set result = '{}' where id = $1`, [inserted.rows[0]!.id]);
    });
    return [t1 - t0, performance.now() - t1];
  };
}

// ---------------------------------------------------------------------------------------------------
// Set-up and invariants

async function seedServerUsers(app: RunningApp, pool: PgPool, expiry: Date): Promise<Map<string, string>> {
  const ids = Array.from({ length: USERS }, (_, index) => `user-${index}`);
  await pool.query(`insert into auth_users (id, name) select unnest($1::text[]), 'Bench user'`, [ids]);
  const tokens = new Map<string, string>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < ids.length) {
        const userId = ids[next++]!;
        tokens.set(userId, await mintToken(JWT_SECRET, { userId, ttl: '2h' }));
        await app.services.quota.grantQuota(app.services.orm.em.fork(), {
          userId,
          amount: userId === 'user-0' ? HOT_BALANCE : START_BALANCE,
          expiryDate: expiry,
          actor: 'bench',
        });
      }
    }),
  );
  return tokens;
}

/** Baseline users get the same starting ledger by SQL (they never reach the gateway). */
async function seedBaselineUsers(pool: PgPool, expiry: Date): Promise<void> {
  const ids = Array.from({ length: USERS }, (_, index) => `raw-${index}`);
  const amounts = ids.map((id) => centsToDecimalString(id === 'raw-0' ? HOT_BALANCE : START_BALANCE));
  await pool.query(`insert into auth_users (id, name) select unnest($1::text[]), 'Baseline user'`, [ids]);
  await pool.query(
    `insert into quota (user_id, amount, expiry_date, status) select id, amount::numeric, $3, 'VALID'
       from unnest($1::text[], $2::text[]) as t(id, amount)`,
    [ids, amounts, expiry],
  );
  await pool.query(
    `insert into quota_audit (user_id, amount, operation, expiry_date, details) select id, amount::numeric, 'RECHARGE', $3, '{}'
       from unnest($1::text[], $2::text[]) as t(id, amount)`,
    [ids, amounts, expiry],
  );
}

/** SPEC §11's invariants; baseline users (raw-…) are checked without the gateway, which they never touch. */
async function ledgerViolations(pool: PgPool, simulator: GatewaySimulator): Promise<string[]> {
  const violations: string[] = [];
  const users = await pool.query<{ user_id: string; valid: string; audited: string }>(
    `select u.user_id,
            coalesce((select sum(amount) from quota q where q.user_id = u.user_id and q.status = 'VALID'), 0)::text as valid,
            coalesce((select sum(amount) from quota_audit a where a.user_id = u.user_id), 0)::text as audited
       from (select user_id from quota union select user_id from quota_audit) u`,
  );
  for (const user of users.rows) {
    const valid = decimalToCents(user.valid);
    if (decimalToCents(user.audited) !== valid) violations.push(`${user.user_id}: Σ audits ≠ Σ VALID`);
    if (!user.user_id.startsWith('raw-') && simulator.getUser(user.user_id).total !== valid) {
      violations.push(`${user.user_id}: gateway total ≠ Σ VALID`);
    }
  }
  const negative = await pool.query('select id from quota where amount < 0');
  for (const row of negative.rows) violations.push(`negative batch ${String(row.id)}`);
  const twice = await pool.query(
    `select voucher_code from voucher_redemption group by voucher_code having count(*) > 1`,
  );
  for (const _ of twice.rows) violations.push('a voucher redeemed twice');
  const unredeemed = await pool.query<{ n: string }>(
    `select count(*) as n from quota_audit a where a.operation = 'TRANSFER_OUT'
        and not exists (select 1 from voucher_redemption r where md5(r.voucher_code) = md5(a.voucher_code))`,
  );
  const lost = Number(unredeemed.rows[0]!.n);
  if (lost > 0) violations.push(`${lost} issued vouchers never redeemed`);
  return violations;
}

function ratioLine(server: Run, baseline: Run): string {
  const ratio = server.pairs / server.seconds / (baseline.pairs / baseline.seconds);
  return `  server / raw SQL throughput: ${ratio.toFixed(3)} (the server reaches ${(ratio * 100).toFixed(1)}% of the database floor)`;
}

async function main(): Promise<void> {
  const folder = await mkdtemp(path.join(tmpdir(), 'qm-bench-'));
  // As root the cluster runs as user postgres, who must be able to enter the folder (mkdtemp makes it 0700).
  await chmod(folder, 0o755);
  const logger = silentLogger();
  const database = await startEmbeddedPostgres({ root: path.join(folder, 'data'), persistent: false, logger });
  const simulator = new GatewaySimulator();
  let app: RunningApp | undefined;
  let pool: PgPool | undefined;
  try {
    const databaseUrl = database.url.replace(/\/postgres$/, '/bench_transfer');
    const gatewayUrl = await simulator.start(0);
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      AIGATEWAY_URL: gatewayUrl,
      AUTH_JWT_SECRET: JWT_SECRET,
      VOUCHER_SIGNING_KEY: VOUCHER_KEY,
      TZ_NAME: ZONE,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    config.port = 0;
    app = await startApp({ config, logger, schedule: false });
    pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
    pool.on('error', () => undefined);

    const expiry = endOfMonth(new Date(), ZONE, 1);
    const seedStarted = performance.now();
    const tokens = await seedServerUsers(app, pool, expiry);
    await seedBaselineUsers(pool, expiry);
    const codec = new VoucherCodec({ signingKey: VOUCHER_KEY }, ZONE);
    console.log(
      `Transfer benchmark: ${USERS} users, ${CLIENTS} concurrent clients, PostgreSQL ${await serverVersion(pool)} ` +
        `(embedded), gateway simulator over HTTP; seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s\n`,
    );

    // Warm-up: connections, JIT, prepared paths.
    await drive('warm-up', 64, CLIENTS, serverPair(app, tokens, expiry, false));
    await drive('warm-up', 64, CLIENTS, baselinePair(pool, codec, expiry, false));

    const server = await drive('server, random pairs', PAIRS, CLIENTS, serverPair(app, tokens, expiry, false));
    const baseline = await drive('raw SQL, random pairs', PAIRS, CLIENTS, baselinePair(pool, codec, expiry, false));
    console.log(describeRun(server));
    console.log(describeRun(baseline));
    console.log(`${ratioLine(server, baseline)}\n`);

    const hotServer = await drive('server, hot giver', HOT_PAIRS, CLIENTS, serverPair(app, tokens, expiry, true));
    const hotBaseline = await drive('raw SQL, hot giver', HOT_PAIRS, CLIENTS, baselinePair(pool, codec, expiry, true));
    console.log(describeRun(hotServer));
    console.log(describeRun(hotBaseline));
    console.log(`${ratioLine(hotServer, hotBaseline)}\n`);

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

async function serverVersion(pool: PgPool): Promise<string> {
  const rows = await pool.query<{ server_version: string }>('show server_version');
  return rows.rows[0]!.server_version;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
