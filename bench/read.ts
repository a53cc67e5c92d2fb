import 'reflect-metadata';
import { endOfMonth } from '../src/clock.js';
import { PROBE_USER_ID } from '../src/modules/gateway/gateway.client.js';
import { StrategyType } from '../src/modules/strategies/strategy.types.js';
import {
  BENCH_ZONE,
  type BenchEnvironment,
  type BenchOptions,
  type BenchResult,
  countStatements,
  type DriveRun,
  describeFailures,
  drive,
  envInt,
  fixed,
  type LatencySummary,
  mergeRuns,
  postGraphql,
  resolveOptions,
  round,
  runIfMain,
  type StatementCounter,
  startBareApollo,
  startBenchEnvironment,
  summarize,
} from './support.js';

/**
 * Read-path benchmark (`npm run bench:read`): BENCH_CLIENTS (20) concurrent clients over HTTP with
 * verified tokens, on `myQuota` (a user's batches from PostgreSQL, total and used from the gateway
 * simulator, FIFO attribution) and on `strategies(first: 20)` (an admin's page of strategies, each with
 * its next run and its first executions), one query shape at a time, for BENCH_SECONDS (10) each, the
 * server and the baseline taking turns in five slices.
 *
 * The gateway simulator (it answers 2 calls per myQuota request) runs in a process of its own
 * (`src/cli/gateway-sim.ts`), as the gateway is another service on another machine in production, so
 * that its CPU is not counted against the server; BENCH_GATEWAY=in-process puts it in this process (the
 * server then shares its core with the simulator, as before).
 *
 * Baseline, in the same process and with the same client: a bare Apollo server (`startStandaloneServer`)
 * built from the same schema SDL, whose trivial resolvers return the very data the server answered —
 * no auth, no limits, no database, no gateway. Targets (issue 7): ≥ 35% of the bare server's
 * requests/s, p99 ≤ 25 ms, and no N+1.
 *
 * "No N+1" is shown by counting the SQL statements the app sends (its ORM's knex `query` event; the
 * statements still run): per request, sequentially, for pages of 1, 5 and 20 strategies — the count must
 * not grow with the page — and over the whole load run.
 *
 * `npm run bench:read` sets NODE_ENV=production, as production runs do (Dockerfile): graphql-js then skips
 * its development-only realm check in every `instanceOf` (~5% of the CPU here). Server and baseline run in
 * this one process, so both get it alike and the ratio stays fair.
 *
 * Settings (environment): BENCH_CLIENTS (20), BENCH_SECONDS (10; quick 2), BENCH_GATEWAY (`process`, the
 * default, or `in-process`), BENCH_QUICK=1 for a smoke run.
 */

const TARGET_RATIO = 0.35;
const TARGET_P99_MS = 25;
const STRATEGIES = 40;
const EXECUTIONS_PER_STRATEGY = 8;
const BATCHES_PER_USER = 3;
/** Turns the server and the bare baseline take within a shape's run. */
const ROUNDS = 5;
/** Sequential requests per shape when counting statements. */
const PROBE_REQUESTS = 20;

const MY_QUOTA = `query MyQuota {
  myQuota {
    userId totalQuota usedQuota remainingQuota isStar
    available { amount expiryDate }
    batches { id amount expiryDate status }
  }
}`;

const STRATEGY_PAGE = `query Strategies($first: Int!) {
  strategies(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id name title type amount condition periodicExpr maxExecPerUser validityDays enabled nextRunAt createdAt updatedAt
      executions(first: 3) { totalCount nodes { id userId status amount } }
    }
  }
}`;

interface Shape {
  name: string;
  query: string;
  variables: Record<string, unknown>;
  /** The token of client `index`. */
  token(index: number): string;
}

interface ShapeFigures {
  shape: Shape;
  server: DriveRun<unknown>;
  bare: DriveRun<unknown>;
  latency: LatencySummary;
  bareLatency: LatencySummary;
  ratio: number;
  /** Sequential probe: statements per request. */
  statementsPerRequest: number;
  /** Over the load run: statements / completed requests. */
  loadStatementsPerRequest: number;
  gatewayCallsPerRequest: number;
}

/** Readers with batches at three expiries and some usage at the gateway; strategies with executions. */
async function seed(environment: BenchEnvironment, clients: number) {
  const { app, pool, gateway } = environment;
  const readers = Array.from({ length: clients }, (_, index) => `reader-${index}`);
  await pool.query(`insert into auth_users (id, name) select unnest($1::text[]), 'Bench reader'`, [readers]);
  for (const userId of readers) {
    for (let month = 1; month <= BATCHES_PER_USER; month++) {
      await app.services.quota.grantQuota(app.services.orm.em.fork(), {
        userId,
        amount: 10_000 * month,
        expiryDate: endOfMonth(new Date(), BENCH_ZONE, month),
        actor: 'bench',
      });
    }
    // Used spans the first batch and part of the second, so FIFO attribution has work to do.
    await gateway.setUser(userId, { used: 12_345 });
  }

  const em = app.services.orm.em.fork();
  for (let index = 0; index < STRATEGIES; index++) {
    const periodic = index % 2 === 0;
    await app.services.strategies.createStrategy(em, 'bench', {
      name: `read-${index}`,
      title: `Read bench strategy ${index}`,
      type: periodic ? StrategyType.PERIODIC : StrategyType.SINGLE,
      periodicExpr: periodic ? '0 0 8 * * *' : null,
      amount: 1 + index,
      condition: periodic ? 'is-vip(1)' : 'and(is-vip(2), belong-to("Acme"))',
      maxExecPerUser: periodic ? 3 : 0,
    });
  }
  const expiry = endOfMonth(new Date(), BENCH_ZONE, 1);
  await pool.query(
    `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, single)
     select s.id, 'u' || n, '20260101000000', case when n % 4 = 0 then 'failed' else 'completed' end, $1, s.amount,
            'bench:' || n, s.type = 'single'
       from quota_strategy s cross join generate_series(1, $2::int) as n`,
    [expiry, EXECUTIONS_PER_STRATEGY],
  );

  const userTokens = await Promise.all(readers.map((userId) => environment.token(userId)));
  const adminTokens = await Promise.all(readers.map((_, index) => environment.token(`read-admin-${index}`, true)));
  return { userTokens, adminTokens };
}

/** Statements and gateway calls per request, one request at a time. */
async function probe(
  environment: BenchEnvironment,
  statements: StatementCounter,
  shape: Shape,
): Promise<{ statements: number; gatewayCalls: number }> {
  await environment.gateway.clearCalls();
  statements.reset();
  for (let index = 0; index < PROBE_REQUESTS; index++) {
    await postGraphql(environment.app.url, shape.token(index), shape.query, shape.variables);
  }
  // The health probe reads the total of PROBE_USER_ID every few seconds: not the requests' calls.
  const calls = await environment.gateway.calls();
  const gatewayCalls = calls.filter((call) => call.params.user_id !== PROBE_USER_ID).length;
  return { statements: statements.count / PROBE_REQUESTS, gatewayCalls: gatewayCalls / PROBE_REQUESTS };
}

export async function run(options: BenchOptions = {}): Promise<BenchResult> {
  const { quick, log } = resolveOptions(options);
  const clients = envInt('BENCH_CLIENTS', 20);
  const seconds = envInt('BENCH_SECONDS', quick ? 2 : 10);
  let environment: BenchEnvironment | undefined;
  let bare: { url: string; stop(): Promise<void> } | undefined;
  let statements: StatementCounter | undefined;
  try {
    environment = await startBenchEnvironment({
      name: 'read',
      options,
      gateway: process.env.BENCH_GATEWAY === 'in-process' ? 'in-process' : 'process',
    });
    const { app, gateway } = environment;
    const { userTokens, adminTokens } = await seed(environment, clients);
    log(
      `Read benchmark: ${clients} concurrent clients, ${seconds} s per run, PostgreSQL ${environment.postgresVersion} ` +
        `(embedded), gateway simulator over HTTP ${gateway.where}, node ${process.version}, NODE_ENV=${process.env.NODE_ENV ?? '(unset)'}` +
        `${quick ? ', quick' : ''}\n`,
    );

    const shapes: Shape[] = [
      { name: 'myQuota', query: MY_QUOTA, variables: {}, token: (index) => userTokens[index % clients]! },
      {
        name: 'strategies(first: 20)',
        query: STRATEGY_PAGE,
        variables: { first: 20 },
        token: (index) => adminTokens[index % clients]!,
      },
    ];
    const answers = {
      myQuota: (await postGraphql<{ myQuota: unknown }>(app.url, userTokens[0]!, MY_QUOTA)).myQuota,
      strategies: (await postGraphql<{ strategies: unknown }>(app.url, adminTokens[0]!, STRATEGY_PAGE, { first: 20 }))
        .strategies,
    };
    bare = await startBareApollo({
      Query: { myQuota: () => answers.myQuota, strategies: () => answers.strategies },
    });
    statements = countStatements(app);

    // No N+1: the statements of one page must not grow with the page.
    const byPageSize: Record<number, number> = {};
    for (const first of [1, 5, 20]) {
      const page = await probe(environment, statements, { ...shapes[1]!, variables: { first } });
      byPageSize[first] = page.statements;
    }
    log(
      `SQL statements per strategies(first: N) request (with executions(first: 3) of each): ` +
        Object.entries(byPageSize)
          .map(([first, count]) => `N=${first}: ${fixed(count, 1)}`)
          .join(', '),
    );
    const nPlusOne = byPageSize[20]! > byPageSize[1]!;
    log(nPlusOne ? '  the count grows with the page: N+1\n' : '  constant in N: no N+1\n');

    const results: ShapeFigures[] = [];
    for (const shape of shapes) {
      const probed = await probe(environment, statements, shape);
      const work = (url: string) => (index: number) =>
        postGraphql(url, shape.token(index), shape.query, shape.variables);
      // Warm-up of both servers: connections, JIT, the pool.
      await drive({ name: 'warm-up', clients, seconds: 1 }, work(app.url));
      await drive({ name: 'warm-up', clients, seconds: 1 }, work(bare.url));

      // Server and baseline take turns, ROUNDS slices each, so that load from elsewhere on a shared
      // machine falls on both alike rather than on whichever ran second.
      const slice = seconds / ROUNDS;
      const serverSlices: DriveRun<unknown>[] = [];
      const bareSlices: DriveRun<unknown>[] = [];
      let loadStatements = 0;
      for (let turn = 0; turn < ROUNDS; turn++) {
        statements.reset();
        serverSlices.push(await drive({ name: `server, ${shape.name}`, clients, seconds: slice }, work(app.url)));
        loadStatements += statements.count;
        bareSlices.push(await drive({ name: `bare Apollo, ${shape.name}`, clients, seconds: slice }, work(bare.url)));
      }
      const server = mergeRuns(serverSlices);
      const bareRun = mergeRuns(bareSlices);
      const figures: ShapeFigures = {
        shape,
        server,
        bare: bareRun,
        latency: summarize(server.latency),
        bareLatency: summarize(bareRun.latency),
        ratio: server.rate / bareRun.rate,
        statementsPerRequest: probed.statements,
        loadStatementsPerRequest: loadStatements / Math.max(1, server.completed),
        gatewayCallsPerRequest: probed.gatewayCalls,
      };
      results.push(figures);
      log(describeShape(figures));
    }
    await gateway.clearCalls();

    const ratio = Math.min(...results.map((result) => result.ratio));
    const worstP99 = Math.max(...results.map((result) => result.latency.p99));
    const [quota, strategies] = results as [ShapeFigures, ShapeFigures];
    return {
      name: 'read',
      figures: {
        clients,
        secondsPerRun: seconds,
        myQuotaRequestsPerSecond: round(quota.server.rate),
        myQuotaP50Ms: round(quota.latency.p50, 1),
        myQuotaP99Ms: round(quota.latency.p99, 1),
        myQuotaBareRequestsPerSecond: round(quota.bare.rate),
        myQuotaRatio: round(quota.ratio, 3),
        myQuotaStatementsPerRequest: round(quota.statementsPerRequest, 2),
        myQuotaGatewayCallsPerRequest: round(quota.gatewayCallsPerRequest, 2),
        strategiesRequestsPerSecond: round(strategies.server.rate),
        strategiesP50Ms: round(strategies.latency.p50, 1),
        strategiesP99Ms: round(strategies.latency.p99, 1),
        strategiesBareRequestsPerSecond: round(strategies.bare.rate),
        strategiesRatio: round(strategies.ratio, 3),
        strategiesStatementsPerRequest: round(strategies.statementsPerRequest, 2),
        strategiesStatementsByPageSize: Object.entries(byPageSize)
          .map(([first, count]) => `${first}:${round(count, 2)}`)
          .join(' '),
        failed: results.reduce(
          (sum, result) => sum + [...result.server.failures.values()].reduce((a, b) => a + b, 0),
          0,
        ),
      },
      baseline: `bare Apollo ${round(quota.bare.rate)} / ${round(strategies.bare.rate)} req/s (myQuota / strategies)`,
      ratio: round(ratio, 3),
      target: `server/bare ≥ ${TARGET_RATIO}, p99 ≤ ${TARGET_P99_MS} ms, no N+1`,
      met: ratio >= TARGET_RATIO && worstP99 <= TARGET_P99_MS && !nPlusOne,
    };
  } finally {
    statements?.stop();
    await bare?.stop();
    await environment?.stop();
  }
}

function describeShape(figures: ShapeFigures): string {
  const { server, bare, latency, bareLatency } = figures;
  return [
    `${figures.shape.name}:`,
    `  server      ${fixed(server.rate, 0)} requests/s, p50 ${fixed(latency.p50)} ms, p99 ${fixed(latency.p99)} ms ` +
      `(${server.completed} requests, failed: ${describeFailures(server.failures)})`,
    `  bare Apollo ${fixed(bare.rate, 0)} requests/s, p50 ${fixed(bareLatency.p50)} ms, p99 ${fixed(bareLatency.p99)} ms ` +
      `(failed: ${describeFailures(bare.failures)})`,
    `  server / bare Apollo: ${figures.ratio.toFixed(3)} (${(figures.ratio * 100).toFixed(1)}%)`,
    `  SQL statements per request: ${fixed(figures.statementsPerRequest, 2)} one at a time, ` +
      `${fixed(figures.loadStatementsPerRequest, 2)} under load; gateway calls per request: ${fixed(figures.gatewayCallsPerRequest, 2)}`,
    '',
  ].join('\n');
}

runIfMain(import.meta.url, run);
