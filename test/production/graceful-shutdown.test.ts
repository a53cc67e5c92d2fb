import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { dropDatabase, uniqueDatabaseUrl } from '../support/database.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import {
  type GraphqlAnswer,
  killAllServers,
  openDatabase,
  pollUntil,
  ServerProcess,
  serverEnv,
  tokenFor,
} from './server-process.js';

/**
 * Issue 6 item 3, SPEC §9 "Shutdown": a server process on a configured database, with requests in
 * flight (held by the gateway) and a strategy run going, gets SIGTERM. Every request it had
 * accepted is answered, the running job stops at a safe point and is recorded (no job_run is left
 * RUNNING, no execution left claimed), the ledger agrees with the gateway, and the process exits 0.
 */

const USER_QUOTA = 'query($userId: String!) { userQuota(userId: $userId) { totalQuota usedQuota remainingQuota } }';
const DEDUCT = 'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { id amount } }';

let simulator: GatewaySimulator;
let databaseUrl: string;
let orm: MikroORM | undefined;

beforeAll(async () => {
  simulator = new GatewaySimulator();
  await simulator.start(0);
  databaseUrl = uniqueDatabaseUrl('graceful_shutdown');
});

afterAll(async () => {
  await killAllServers();
  await orm?.close(true);
  await simulator?.stop();
  await dropDatabase(databaseUrl);
});

function ids(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}-${String(index + 1).padStart(3, '0')}`);
}

describe('SIGTERM under load', () => {
  it('answers every request accepted before the signal, stops the job at a safe point and exits 0', async () => {
    const server = await ServerProcess.start(
      'shutdown',
      serverEnv(databaseUrl, simulator.url, { AIGATEWAY_TIMEOUT_MS: '5000', SHUTDOWN_TIMEOUT_MS: '15000' }),
    );
    orm = await openDatabase(databaseUrl);
    const sql = <T = Record<string, unknown>>(query: string, params: unknown[] = []) =>
      orm!.em.fork().execute<T[]>(query, params);
    const admin = await tokenFor('ops-admin', true);

    const granted = ids('bulk', 300);
    const readers = ids('reader', 12);
    await sql(
      `insert into auth_users (id, name, vip)
       select id, 'User ' || id, case when id like 'bulk-%' then 5 else 0 end
       from jsonb_array_elements_text(?::jsonb) as ids(id)`,
      [JSON.stringify([...granted, ...readers])],
    );

    // A strategy run that takes a few seconds: every grant's gateway write is slow.
    simulator.setFault('setTotal', { kind: 'slow', delayMs: 100 });
    const created = await server.must<{ createStrategy: { id: string } }>(
      'mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }',
      { input: { name: 'bulk', title: 'Bulk', type: 'SINGLE', amount: 10, condition: 'is-vip(5)' } },
      admin,
    );
    const strategyId = created.createStrategy.id;
    const run = await server.must<{ runStrategy: { id: string } }>(
      'mutation($id: ID!) { runStrategy(id: $id) { id } }',
      { id: strategyId },
      admin,
    );
    const completed = async () => {
      const rows = await sql<{ user_id: string }>(
        `select user_id from quota_execute where strategy_id = ? and status = 'completed' order by user_id`,
        [strategyId],
      );
      return rows.map((row) => row.user_id);
    };
    await pollUntil('the run to grant its first users', 20_000, async () => (await completed()).length >= 10);
    // From now on each grant's write takes 1.2 s: the ~290 grants left need ~45 s, far longer than
    // the test may take (10 s at most) to put its requests in flight, so the run is surely still going
    // when the signal comes — at 100 ms a write, a slow moment of the test let the run end first.
    simulator.setFault('setTotal', { kind: 'slow', delayMs: 1_200 });

    // Requests the gateway holds until the server has begun its shutdown: reads of 12 users, and
    // deductions from 4 granted users. (Held for a fixed 1.2 s, the first ones could end before the last
    // ones arrived, and none was sure to be in flight at the signal on a slow machine.)
    simulator.setFault('getTotal', { kind: 'hold' });
    simulator.setFault('getUsed', { kind: 'hold' });
    const deducted = (await completed()).slice(0, 4);
    const requests: Promise<GraphqlAnswer>[] = [
      ...readers.map((userId) => server.gql(USER_QUOTA, { userId }, admin)),
      ...deducted.map((userId, index) =>
        server.gql(
          DEDUCT,
          { input: { userId, amount: 1, reason: 'shutdown test', reference: `shutdown-${index}` } },
          admin,
        ),
      ),
    ];
    // Settled, never rejected: a reset connection must show up as a failed answer below, not crash the test.
    const settled = Promise.allSettled(requests);
    // Accepted means the server is working on it: the gateway holds its call.
    const held = () => {
      const pending = simulator.calls({ outcome: 'pending' });
      const reading = new Set(pending.filter((call) => call.route === 'getTotal').map((call) => call.params.user_id));
      const deducting = new Set(pending.filter((call) => call.route === 'getUsed').map((call) => call.params.user_id));
      return readers.every((id) => reading.has(id)) && deducted.every((id) => deducting.has(id));
    };
    let signalledAt: number;
    try {
      await pollUntil('every request to be in flight on the server', 10_000, held, 10);
      const [{ status: runStatusAtSignal }] = await sql<{ status: string }>('select status from job_run where id = ?', [
        run.runStrategy.id,
      ]);
      expect(runStatusAtSignal).toBe('RUNNING');

      signalledAt = Date.now();
      server.kill('SIGTERM');
      await pollUntil('the server to begin its shutdown', 10_000, () =>
        server.logLines().some((line) => line.msg === 'shutting down'),
      );
    } finally {
      // The held calls go on (also when the test failed above, so the server can stop).
      simulator.clearFaults('getTotal');
      simulator.clearFaults('getUsed');
      simulator.release();
    }
    const answers = await settled;
    const exit = await server.exited;
    const shutdownMs = Date.now() - signalledAt;

    // Every accepted request answered, with data and without errors.
    const failures = answers.flatMap((answer, index) => {
      if (answer.status === 'rejected') return [`request ${index}: ${String(answer.reason?.cause ?? answer.reason)}`];
      if (answer.value.status !== 200 || answer.value.errors || !answer.value.data) {
        return [`request ${index}: HTTP ${answer.value.status} ${JSON.stringify(answer.value.errors)}`];
      }
      return [];
    });
    expect(failures, server.tail()).toEqual([]);
    expect(exit, server.tail()).toEqual({ code: 0, signal: null });
    const messages = server.logLines().map((line) => line.msg);
    expect(messages).toContain('shutting down');
    expect(messages).toContain('stopped');

    // No run left RUNNING; the interrupted one says so. No execution left claimed.
    expect(await sql(`select id, status from job_run where status in ('QUEUED', 'RUNNING')`)).toEqual([]);
    const [finished] = await sql<{ status: string; error: string | null; succeeded: number }>(
      'select status, error, succeeded from job_run where id = ?',
      [run.runStrategy.id],
    );
    if (finished!.status === 'FAILED') expect(finished!.error).toMatch(/^INTERRUPTED: /);
    else expect(finished!.status).toBe('SUCCEEDED');
    expect(
      await sql(`select user_id from quota_execute where strategy_id = ? and status = 'processing'`, [strategyId]),
    ).toEqual([]);
    const grantedUsers = (await completed()).length;
    expect(finished!.succeeded).toBe(grantedUsers);

    // The deductions that answered are in the ledger, and the gateway agrees with it for everyone.
    const [{ n: deductions }] = await sql<{ n: number }>(
      `select count(*)::int as n from quota_audit where operation = 'DEDUCT' and reference like 'shutdown-%'`,
    );
    expect(deductions).toBe(deducted.length);
    simulator.clearFaults();
    await assertLedgerInvariants(orm.em.fork(), simulator);
    console.log(
      `graceful shutdown: ${requests.length} requests in flight all answered; the run ${finished!.status} after ` +
        `${grantedUsers} of ${granted.length} grants; exit ${exit.code} ${shutdownMs} ms after SIGTERM`,
    );
  }, 90_000);
});
