import 'reflect-metadata';
import { setTimeout as sleep } from 'node:timers/promises';
import { PUSH_CONCURRENCY } from '../src/modules/permissions/permission-pusher.js';
import {
  type BenchEnvironment,
  type BenchOptions,
  type BenchResult,
  countStatements,
  envInt,
  fixed,
  type HttpServerWatch,
  type PgPool,
  postGraphql,
  resolveOptions,
  round,
  runIfMain,
  type StatementCounter,
  startBenchEnvironment,
  watchHttpServer,
} from './support.js';

/**
 * Permission recompute benchmark (`npm run bench:permissions`, SPEC §6): a department setting over
 * BENCH_EMPLOYEES (10,000) employees, with employee sync on (employees keyed by employee number).
 * The HR mirror is seeded in SQL: the department `Engineering` has 50 teams; a team has a whitelist
 * of its own and 1% of the employees a personal one (set through the service before timing, so they
 * are told once), and 2,000 employees elsewhere are not touched. Each phase is one GraphQL mutation by
 * an admin over HTTP, timed from the client, with the pushes observed at the gateway simulator
 * (node:http diagnostics channels on its port, in this process): how many, when the first arrived
 * (so the recompute — resolve, lock, store, recompute, audit, commit — is the time before it, the
 * pushes the time after), and how many were in flight at once. SQL statements are counted too.
 *
 * Phases: a first department whitelist; a change of it; the same value again (nothing to do); the
 * star check switched on for the department; a change with the gateway answering model pushes after
 * BENCH_GATEWAY_DELAY_MS (5), so that the pusher's bound shows at the simulator.
 *
 * Baselines, in the same process and database:
 * - recompute: the same rows as raw SQL over a pg pool — for as many employees of another tree, in one
 *   transaction: the lock, the setting, the employees under the department, their settings and effective
 *   rows, the effective rows upserted and one audit row each, as one statement per step;
 * - pushes: as many model pushes sent straight to the simulator with fetch, at the pusher's concurrency
 *   (8), with no database bookkeeping.
 *
 * There is no speed target in issue 7 for this one; the check is that pushes stay bounded (≤ 8 in flight).
 * Settings (environment): BENCH_EMPLOYEES (10000; quick 1000), BENCH_GATEWAY_DELAY_MS (5), BENCH_QUICK=1.
 */

/** PermissionService's default push concurrency (src/app.ts does not override it). */
const TEAMS = 50;
/** The gateway's permission write routes (SPEC §8), at its root. */
const PUSH_PATHS = ['/model-permission/set', '/check-star/set', '/check-quota/set'];
const OUTSIDERS = 2_000;
const DEPARTMENT = 'Engineering';
const RAW_DEPARTMENT = 'RawEngineering';

const SET_WHITELIST = `mutation($input: SetModelWhitelistInput!) {
  setModelWhitelist(input: $input) { targetIdentifier models updatedAt }
}`;
const SET_SWITCH = `mutation($input: SetSwitchInput!) {
  setSwitch(input: $input) { kind targetIdentifier enabled }
}`;

interface Phase {
  name: string;
  totalMs: number;
  /** From the request to the first push the simulator received (the whole mutation when none). */
  recomputeMs: number;
  /** From the first push received to the mutation's answer. */
  pushMs: number;
  pushes: number;
  maxInFlight: number;
  statements: number;
  recomputeStatements: number;
}

/** Engineering's employees (E…), the raw baseline's copy of them (R…), and others (S…). */
async function seedEmployees(pool: PgPool, employees: number): Promise<void> {
  await pool.query(
    `insert into employee_department (employee_number, username, dept_full_level_names, dep_id)
     select 'E' || lpad(i::text, 6, '0'), 'Engineer ' || i, 'Corp,${DEPARTMENT},Team-' || (i % ${TEAMS}), (100 + i % ${TEAMS})::text
       from generate_series(1, $1::int) as i
     union all
     select 'R' || lpad(i::text, 6, '0'), 'Raw engineer ' || i, 'RawCorp,${RAW_DEPARTMENT},RawTeam-' || (i % ${TEAMS}), (200 + i % ${TEAMS})::text
       from generate_series(1, $1::int) as i
     union all
     select 'S' || lpad(i::text, 6, '0'), 'Seller ' || i, 'Corp,Sales,Region-' || (i % 10), (300 + i % 10)::text
       from generate_series(1, $2::int) as i`,
    [employees, OUTSIDERS],
  );
}

/** A team whitelist and personal whitelists for 1% of the department, set (and pushed) before timing. */
async function seedOwnSettings(environment: BenchEnvironment, employees: number): Promise<string[]> {
  const { permissions, orm } = environment.app.services;
  const actor = { userId: 'bench-admin' };
  await permissions.setModelWhitelist(orm.em.fork(), actor, { departmentName: 'Team-7', models: ['team-model'] });
  const personal: string[] = [];
  for (let i = 1; i <= employees; i += 100) {
    if (i % TEAMS === 7) continue;
    const number = `E${String(i).padStart(6, '0')}`;
    personal.push(number);
    await permissions.setModelWhitelist(orm.em.fork(), actor, {
      user: { employeeNumber: number },
      models: ['personal-model'],
    });
  }
  return personal;
}

async function timedPhase(
  watch: HttpServerWatch,
  statements: StatementCounter,
  name: string,
  mutation: () => Promise<unknown>,
): Promise<Phase> {
  await waitForQuiet(watch);
  watch.reset();
  statements.reset();
  const started = performance.now();
  await mutation();
  const ended = performance.now();
  const firstPush = watch.firstStart;
  const recomputeEnd = firstPush ?? ended;
  return {
    name,
    totalMs: ended - started,
    recomputeMs: recomputeEnd - started,
    pushMs: ended - recomputeEnd,
    pushes: watch.requests,
    maxInFlight: watch.maxInFlight,
    statements: statements.count,
    // The mutation's own transaction comes first; each push runs in a transaction of its own.
    recomputeStatements: statements.byTransaction()[0] ?? 0,
  };
}

/** The health probe and earlier pushes finish before a phase starts. */
async function waitForQuiet(watch: HttpServerWatch): Promise<void> {
  const deadline = performance.now() + 5_000;
  while (watch.inFlight > 0 && performance.now() < deadline) await sleep(5);
}

function describePhase(phase: Phase, employees: number): string {
  const pushRate = phase.pushes / (phase.pushMs / 1000);
  const perPush = phase.pushes > 0 ? (phase.statements - phase.recomputeStatements) / phase.pushes : 0;
  return [
    `${phase.name}: ${fixed(phase.totalMs, 0)} ms in all`,
    `  recompute ${fixed(phase.recomputeMs, 0)} ms (${fixed(employees / (phase.recomputeMs / 1000), 0)} employees/s, ` +
      `${phase.recomputeStatements} SQL statements)`,
    phase.pushes > 0
      ? `  pushes ${phase.pushes} in ${fixed(phase.pushMs, 0)} ms = ${fixed(pushRate, 0)} pushes/s, ` +
        `at most ${phase.maxInFlight} in flight at the simulator, ${fixed(perPush, 1)} SQL statements a push`
      : '  no pushes',
  ].join('\n');
}

/**
 * The recompute's database work for `employees` employees of RAW_DEPARTMENT as raw SQL in one
 * transaction: what the server writes, in the fewest statements.
 */
async function rawRecompute(pool: PgPool, models: string[]): Promise<{ ms: number; rows: number }> {
  const client = await pool.connect();
  const started = performance.now();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock(7301124601)');
    const setting = await client.query<{ id: string }>(
      `insert into model_whitelist (target_type, target_identifier, allowed_models, create_time, update_time)
       values ('department', $1, $2, now(), now())
       on conflict (target_type, target_identifier) do update set allowed_models = excluded.allowed_models, update_time = now()
       returning id::text`,
      [RAW_DEPARTMENT, models.join(',')],
    );
    const employees = await client.query<{ employee_number: string; dept_full_level_names: string }>(
      `select employee_number, dept_full_level_names from employee_department
        where string_to_array(dept_full_level_names, ',') @> array[$1::text] order by employee_number`,
      [RAW_DEPARTMENT],
    );
    const keys = employees.rows.map((row) => row.employee_number);
    const departments = [...new Set(employees.rows.flatMap((row) => row.dept_full_level_names.split(',')))];
    await client.query(
      `select id, target_type, target_identifier, allowed_models from model_whitelist
        where (target_type = 'user' and target_identifier = any($1::text[]))
           or (target_type = 'department' and target_identifier = any($2::text[]))`,
      [keys, departments],
    );
    await client.query(
      `select employee_number, effective_models, source, source_identifier, whitelist_id, notified_models
         from effective_permissions where employee_number = any($1::text[])`,
      [keys],
    );
    await client.query(
      `insert into effective_permissions (employee_number, effective_models, whitelist_id, source, source_identifier, create_time, update_time)
       select key, $2, $3, 'department', $4, now(), now() from unnest($1::text[]) as key
       on conflict (employee_number) do update set effective_models = excluded.effective_models,
         whitelist_id = excluded.whitelist_id, source = excluded.source,
         source_identifier = excluded.source_identifier, update_time = excluded.update_time`,
      [keys, models.join(','), setting.rows[0]!.id, RAW_DEPARTMENT],
    );
    const details = employees.rows.map((row) =>
      JSON.stringify({
        kind: 'MODEL',
        cause: { operation: 'whitelist_set', targetType: 'department', targetIdentifier: RAW_DEPARTMENT },
        actor: 'bench-admin',
        departmentPath: row.dept_full_level_names.split(','),
        before: null,
        after: { value: models, source: 'department', sourceIdentifier: RAW_DEPARTMENT },
        changed: true,
        lastNotified: null,
        gatewayNotified: null,
      }),
    );
    await client.query(
      `insert into permission_audit (operation, target_type, target_identifier, details, create_time)
       select 'permission_updated', 'user', key, detail, now() from unnest($1::text[], $2::text[]) as t(key, detail)`,
      [keys, details],
    );
    await client.query('commit');
    return { ms: performance.now() - started, rows: keys.length };
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** `count` model pushes straight to the simulator, `concurrency` at a time: the floor of the pushes. */
async function rawPushes(gatewayUrl: string, count: number, concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const index = next++;
        const response = await fetch(`${gatewayUrl}/model-permission/set`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            employee_number: `R${String(index + 1).padStart(6, '0')}`,
            models: JSON.stringify(['gpt-4o', 'claude']),
          }).toString(),
        });
        const body = (await response.json()) as { success?: boolean };
        if (!body.success) throw new Error(`raw push answered ${response.status}`);
      }
    }),
  );
  return performance.now() - started;
}

export async function run(options: BenchOptions = {}): Promise<BenchResult> {
  const { quick, log } = resolveOptions(options);
  const employees = envInt('BENCH_EMPLOYEES', quick ? 1_000 : 10_000);
  const delayMs = envInt('BENCH_GATEWAY_DELAY_MS', 5);
  let environment: BenchEnvironment | undefined;
  let watch: HttpServerWatch | undefined;
  let statements: StatementCounter | undefined;
  try {
    environment = await startBenchEnvironment({ name: 'permissions', options, env: { HR_SYNC_ENABLED: 'true' } });
    const { app, pool, simulator } = environment;
    const seedStarted = performance.now();
    await seedEmployees(pool, employees);
    const personal = await seedOwnSettings(environment, employees);
    log(
      `Permission benchmark: ${employees.toLocaleString('en')} employees under "${DEPARTMENT}" (${TEAMS} teams, ` +
        `one with its own whitelist, ${personal.length} personal whitelists), ${OUTSIDERS.toLocaleString('en')} elsewhere; ` +
        `PostgreSQL ${environment.postgresVersion} (embedded), gateway simulator over HTTP; seeded in ` +
        `${((performance.now() - seedStarted) / 1000).toFixed(1)} s${quick ? ', quick' : ''}\n`,
    );

    statements = countStatements(app);
    // Permission pushes only: the health probe reads a total every few seconds.
    watch = watchHttpServer(Number(new URL(simulator.url).port), { accept: (path) => PUSH_PATHS.includes(path) });
    const admin = await environment.token('bench-admin', true);
    const whitelist = (models: string[]) => () =>
      postGraphql(app.url, admin, SET_WHITELIST, { input: { departmentName: DEPARTMENT, models } });
    const phase = (name: string, mutation: () => Promise<unknown>) => timedPhase(watch!, statements!, name, mutation);

    const phases: Phase[] = [];
    phases.push(await phase('department whitelist, first set', whitelist(['gpt-4o', 'claude'])));
    phases.push(await phase('department whitelist, changed', whitelist(['gpt-4o', 'claude', 'deepseek'])));
    phases.push(await phase('department whitelist, same value again', whitelist(['gpt-4o', 'claude', 'deepseek'])));
    phases.push(
      await phase('department star check on', () =>
        postGraphql(app.url, admin, SET_SWITCH, {
          input: { kind: 'STAR_CHECK', departmentName: DEPARTMENT, enabled: true },
        }),
      ),
    );
    simulator.setFault('setModels', { kind: 'slow', delayMs });
    phases.push(await phase(`whitelist changed, gateway answering in ${delayMs} ms`, whitelist(['gpt-4o'])));
    simulator.clearFaults();
    for (const each of phases) log(`${describePhase(each, employees)}\n`);

    // Baselines.
    const [first, , same, , slow] = phases as [Phase, Phase, Phase, Phase, Phase];
    const raw = await rawRecompute(pool, ['gpt-4o', 'claude']);
    const rawPushMs = await rawPushes(simulator.url, first.pushes, PUSH_CONCURRENCY);
    const recomputeRatio = raw.ms / first.recomputeMs;
    const serverPushRate = first.pushes / (first.pushMs / 1000);
    const rawPushRate = first.pushes / (rawPushMs / 1000);
    log('Baselines:');
    log(
      `  recompute as raw SQL (one transaction, one statement a step): ${raw.rows} employees in ${fixed(raw.ms, 0)} ms ` +
        `= ${fixed(raw.rows / (raw.ms / 1000), 0)} employees/s; server / raw: ${recomputeRatio.toFixed(3)}`,
    );
    log(
      `  ${first.pushes} pushes straight to the simulator, ${PUSH_CONCURRENCY} at a time, no database: ` +
        `${fixed(rawPushMs, 0)} ms = ${fixed(rawPushRate, 0)} pushes/s; server / raw: ${(serverPushRate / rawPushRate).toFixed(3)}`,
    );
    const maxInFlight = Math.max(...phases.map((each) => each.maxInFlight));
    const bounded = maxInFlight <= PUSH_CONCURRENCY;
    log(
      `  most pushes in flight at the simulator in any phase: ${maxInFlight} (bound ${PUSH_CONCURRENCY}); ` +
        `with the ${delayMs} ms gateway: ${slow.maxInFlight}\n`,
    );

    return {
      name: 'permissions',
      figures: {
        employees,
        firstSetTotalMs: round(first.totalMs),
        firstSetRecomputeMs: round(first.recomputeMs),
        firstSetRecomputeStatements: first.recomputeStatements,
        firstSetPushes: first.pushes,
        firstSetPushMs: round(first.pushMs),
        firstSetPushesPerSecond: round(serverPushRate),
        changedTotalMs: round(phases[1]!.totalMs),
        changedRecomputeMs: round(phases[1]!.recomputeMs),
        changedPushes: phases[1]!.pushes,
        sameValueTotalMs: round(same.totalMs),
        sameValuePushes: same.pushes,
        starCheckTotalMs: round(phases[3]!.totalMs),
        starCheckPushes: phases[3]!.pushes,
        slowGatewayDelayMs: delayMs,
        slowGatewayPushesPerSecond: round(slow.pushes / (slow.pushMs / 1000)),
        slowGatewayMaxInFlight: slow.maxInFlight,
        maxInFlight,
        pushConcurrencyBound: PUSH_CONCURRENCY,
        rawRecomputeMs: round(raw.ms),
        rawPushesPerSecond: round(rawPushRate),
        pushRatio: round(serverPushRate / rawPushRate, 3),
      },
      baseline: `raw SQL recompute ${fixed(raw.ms, 0)} ms; raw pushes ${fixed(rawPushRate, 0)}/s`,
      ratio: round(recomputeRatio, 3),
      target: `pushes ≤ ${PUSH_CONCURRENCY} in flight`,
      met: bounded,
    };
  } finally {
    watch?.stop();
    statements?.stop();
    await environment?.stop();
  }
}

runIfMain(import.meta.url, run);
