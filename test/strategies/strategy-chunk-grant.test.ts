import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { grantExpiry } from '../../src/modules/strategies/strategy-rules.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { advisoryLockWaiters } from '../support/database.js';
import {
  addUsers,
  checkInvariants,
  completedPerUser,
  createStrategy,
  em,
  executionsOf,
  numberedUsers,
  rechargeAuditsOf,
  runAndWait,
  runStrategy,
  waitForRun,
} from './strategy-support.js';

/**
 * SPEC §4 "a grant is one transaction", for a chunk of users granted in one transaction
 * (StrategyChunkGrant): per user the outcome must be that of one grant each — a user whose gateway
 * total cannot be set is taken out alone (FAILED, nothing of theirs written, a total that may have
 * been applied set back), the others are granted with the same rows a one-user grant writes, the
 * limit of a periodic strategy holds, and a user the database refuses fails alone.
 */

/**
 * A proxy in front of the simulator that fails the next setTotal of chosen users (the simulator's
 * faults are per route; these tests need particular users of one chunk to fail):
 * - refuse: answer 400 without forwarding (refused, nothing applied);
 * - applied-then-drop: forward, then close without answering (applied, answer lost: ambiguous);
 * - applied-then-503: forward, then answer 503 (applied, then a 5xx: the gateway may be ahead).
 */
type TotalFault = 'refuse' | 'applied-then-drop' | 'applied-then-503';

class PerUserFaults {
  private readonly next = new Map<string, TotalFault>();
  private server: Server | undefined;

  constructor(private readonly target: GatewaySimulator) {}

  failNextSetTotal(userId: string, fault: TotalFault): void {
    this.next.set(userId, fault);
  }

  pending(): string[] {
    return [...this.next.keys()];
  }

  clear(): void {
    this.next.clear();
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const body = Buffer.concat(chunks).toString();
        const path = new URL(req.url ?? '/', 'http://proxy').pathname;
        const setTotal = req.method === 'POST' && path.endsWith('/refresh') && !path.endsWith('/used/refresh');
        const userId = setTotal ? new URLSearchParams(body).get('user_id') : null;
        const fault = userId === null ? undefined : this.next.get(userId);
        if (fault) this.next.delete(userId!);
        if (fault === 'refuse') return reply(res, 400, 'refused by the test');
        const answer = await fetch(`${this.target.url}${req.url}`, {
          method: req.method,
          headers: forwarded(req.headers),
          body: req.method === 'GET' ? undefined : body,
        });
        const text = await answer.text();
        if (fault === 'applied-then-drop') return void req.socket.destroy();
        if (fault === 'applied-then-503') return reply(res, 503, 'applied, then failed (test)');
        res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
        res.end(text);
      })().catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

function reply(res: import('node:http').ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ code: status, message, success: false, data: null }));
}

function forwarded(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive'].includes(name)) continue;
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

const simulator = new GatewaySimulator();
const faults = new PerUserFaults(simulator);
/** A run's expiry comes from the server's clock; a test that must know it beforehand reads the same one. */
const clock = new SettableClock('Asia/Shanghai', '2026-11-15T04:00:00Z');
let app: TestApp;

beforeAll(async () => {
  await simulator.start(0);
  const proxyUrl = await faults.start();
  app = await startTestApp({
    label: 'strategy chunk grant',
    simulator,
    clock,
    // One attempt per call, so a fault set for a user's next setTotal is the whole of that call.
    env: { AIGATEWAY_URL: proxyUrl, AIGATEWAY_RETRIES: '0', STRATEGY_SCAN_CONCURRENCY: '4' },
  });
});
afterAll(async () => {
  await app?.stop();
  await faults.stop();
  await simulator.stop();
});
afterEach(() => {
  faults.clear();
  simulator.clearFaults();
});

async function usersFor(prefix: string, count: number): Promise<string[]> {
  const users = numberedUsers(prefix, count);
  await addUsers(app, users);
  return users.map((user) => user.id);
}

function only(ids: string[]): string {
  return `match-user(${ids.map((id) => JSON.stringify(id)).join(', ')})`;
}

/** The quota values of the setTotal calls the simulator received for a user, in order. */
function totalsSetFor(userId: string): string[] {
  return simulator
    .calls({ route: 'setTotal' })
    .filter((call) => call.params.user_id === userId)
    .map((call) => call.params.quota!);
}

async function batchAmounts(userId: string): Promise<string[]> {
  const rows = await em(app).execute<{ amount: string }[]>(
    `select amount::text from quota where user_id = ? and status = 'VALID' order by expiry_date, id`,
    [userId],
  );
  return rows.map((row) => row.amount);
}

async function rechargeChanges(): Promise<number> {
  const metric = await app.app.services.metrics.registry.getSingleMetric('ledger_changes_total')?.get();
  return metric?.values.find((value) => value.labels.operation === 'RECHARGE')?.value ?? 0;
}

/** Counts the batch upserts the app sends while `work` runs: one per chunk write, or one per user granted alone. */
async function countingUpserts<T>(work: () => Promise<T>): Promise<{ result: T; upserts: number }> {
  const knex = app.app.services.orm.em.getConnection().getKnex() as unknown as {
    on(event: 'query', listener: (query: { sql?: string }) => void): void;
    off(event: 'query', listener: (query: { sql?: string }) => void): void;
  };
  let upserts = 0;
  const listener = (query: { sql?: string }) => {
    if (/^\s*insert into quota \(/i.test(query.sql ?? '')) upserts += 1;
  };
  knex.on('query', listener);
  try {
    return { result: await work(), upserts };
  } finally {
    knex.off('query', listener);
  }
}

/** A first strategy gives every user 5.00 (same expiry as the later grants: the default rule). */
async function grantBase(name: string, ids: string[]): Promise<void> {
  const base = await createStrategy(app, { name, amount: 5, condition: only(ids) });
  expect(await runAndWait(app, base.id)).toMatchObject({ succeeded: ids.length, failed: 0 });
}

describe('a chunk granted in one transaction', () => {
  test('users whose total cannot be set fail alone: nothing of theirs stays, a total that may have been applied is set back', async () => {
    const ids = await usersFor('cg', 20);
    await grantBase('chunk-base', ids);
    const strategy = await createStrategy(app, { name: 'chunk-main', amount: 10, condition: only(ids) });
    const [refused, dropped, failedAfterApplying] = ['cg-004', 'cg-009', 'cg-015'] as const;
    faults.failNextSetTotal(refused, 'refuse');
    faults.failNextSetTotal(dropped, 'applied-then-drop');
    faults.failNextSetTotal(failedAfterApplying, 'applied-then-503');
    simulator.clearCalls();
    const metricBefore = await rechargeChanges();

    const { result: run, upserts } = await countingUpserts(() => runAndWait(app, strategy.id));
    expect(run).toMatchObject({ status: 'SUCCEEDED', processed: 20, succeeded: 17, failed: 3 });
    expect(faults.pending()).toEqual([]);
    // The chunk was written once, then once more without the three: not user by user.
    expect(upserts).toBe(2);

    const losers = new Set<string>([refused, dropped, failedAfterApplying]);
    const executions = await executionsOf(app, strategy.id);
    expect(executions).toHaveLength(20);
    for (const execution of executions) {
      if (losers.has(execution.user_id)) {
        expect(execution, execution.user_id).toMatchObject({
          status: 'failed',
          error: expect.stringMatching(/^GATEWAY_UNAVAILABLE: /),
        });
      } else {
        expect(execution, execution.user_id).toMatchObject({ status: 'completed', error: null });
      }
    }
    const audits = await rechargeAuditsOf(app, strategy.id);
    expect(audits).toEqual(ids.filter((id) => !losers.has(id)).map((id) => ({ user_id: id, amount: '10.00' })));

    for (const id of ids) {
      if (losers.has(id)) {
        expect(await batchAmounts(id), id).toEqual(['5.00']);
        expect(simulator.getUser(id).total, id).toBe(500);
      } else {
        expect(await batchAmounts(id), id).toEqual(['15.00']);
        expect(simulator.getUser(id).total, id).toBe(1500);
        // Set once: writing the chunk again without the three changed none of the others' totals.
        expect(totalsSetFor(id), id).toEqual(['15']);
      }
    }
    // Refused: the gateway never changed, nothing to set back. Applied (answer lost, or a 5xx after
    // writing): set back to the committed Σ once the chunk has committed.
    expect(totalsSetFor(refused)).toEqual([]);
    expect(totalsSetFor(dropped)).toEqual(['15', '5']);
    expect(totalsSetFor(failedAfterApplying)).toEqual(['15', '5']);
    // The ledger's observer hears of the committed grants only.
    expect((await rechargeChanges()) - metricBefore).toBe(17);
    await checkInvariants(app);

    const next = await runAndWait(app, strategy.id);
    expect(next).toMatchObject({ processed: 3, succeeded: 3, failed: 0 });
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    for (const id of losers) expect(simulator.getUser(id).total, id).toBe(1500);
    expect(await rechargeAuditsOf(app, strategy.id)).toHaveLength(20);
    await checkInvariants(app);
  });

  test('the audit and batch rows of a chunk grant are those of a one-user grant', async () => {
    const ids = await usersFor('ai', 3);
    await grantBase('identical-base', [ids[0]!]);
    const strategy = await createStrategy(app, { name: 'identical-main', amount: 12.34, condition: only(ids) });
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 3, failed: 0 });
    const [execution] = await executionsOf(app, strategy.id);
    const expiryDate = new Date(execution!.expiry_date);

    // The same grants, one user each, through QuotaService.grantQuota (what the executor used to do).
    await addUsers(app, [{ id: 'ai-direct-1' }, { id: 'ai-direct-2' }]);
    const quota = app.app.services.quota;
    await quota.grantQuota(em(app), { userId: 'ai-direct-1', amount: 500, expiryDate, actor: 'test' });
    for (const userId of ['ai-direct-1', 'ai-direct-2']) {
      await quota.grantQuota(em(app), {
        userId,
        amount: 1234,
        expiryDate,
        strategyId: strategy.id,
        strategyName: strategy.name,
        actor: `strategy:${strategy.id}`,
      });
    }

    const lastRecharge = async (userId: string) => {
      const [row] = await em(app).execute<Record<string, unknown>[]>(
        `select amount::text, operation, voucher_code, related_user, strategy_id::text, strategy_name, expiry_date,
                details, reason, reference, actor
           from quota_audit where user_id = ? and operation = 'RECHARGE' order by id desc limit 1`,
        [userId],
      );
      return row;
    };
    const withBase = await lastRecharge(ids[0]!);
    expect(withBase).toEqual(await lastRecharge('ai-direct-1'));
    expect(JSON.parse(withBase!.details as string)).toMatchObject({
      items: [{ amount: 12.34, status: 'SUCCESS', originalQuota: 5, newQuota: 17.34 }],
    });
    expect(await lastRecharge(ids[1]!)).toEqual(await lastRecharge('ai-direct-2'));
    expect(await batchAmounts(ids[0]!)).toEqual(await batchAmounts('ai-direct-1'));
    expect(await batchAmounts(ids[1]!)).toEqual(await batchAmounts('ai-direct-2'));
    await checkInvariants(app);
  });

  test('a batch that cannot hold the amount fails that user alone (the chunk is granted one by one)', async () => {
    const ids = await usersFor('ov', 6);
    const full = 'ov-003';
    // A batch at the expiry the run will use, already at numeric(14,2)'s maximum. (Computed from the
    // host's clock, a month could end between this and the run, which would then use another batch.)
    const config = app.config;
    const expiry = grantExpiry(clock.now(), config.timeZone, null, config.defaultExpiry);
    await em(app).execute(
      `insert into quota (user_id, amount, expiry_date, status, create_time, update_time)
       values (?, 999999999999.99, ?, 'VALID', now(), now())`,
      [full, expiry],
    );
    await em(app).execute(
      `insert into quota_audit (user_id, amount, operation, expiry_date, details, actor, create_time)
       values (?, 999999999999.99, 'RECHARGE', ?, '{}', 'test', now())`,
      [full, expiry],
    );
    simulator.setUser(full, { total: 99_999_999_999_999 });
    const strategy = await createStrategy(app, { name: 'overflow', amount: 1, condition: only(ids) });

    const run = await runAndWait(app, strategy.id);
    expect(run).toMatchObject({ processed: 6, succeeded: 5, failed: 1 });
    const executions = await executionsOf(app, strategy.id);
    for (const execution of executions) {
      if (execution.user_id === full) {
        expect(execution).toMatchObject({ status: 'failed', error: expect.stringMatching(/^BAD_USER_INPUT: /) });
      } else {
        expect(execution, execution.user_id).toMatchObject({ status: 'completed' });
      }
    }
    expect(await batchAmounts(full)).toEqual(['999999999999.99']);
    expect((await rechargeAuditsOf(app, strategy.id)).map((audit) => audit.user_id)).toEqual(
      ids.filter((id) => id !== full),
    );
    await checkInvariants(app);
  });

  test('a chunk whose commit fails after the totals were set: every total set back, every user FAILED, retried next run', async () => {
    const ids = await usersFor('cf', 5);
    await grantBase('commit-fails-base', ids);
    const strategy = await createStrategy(app, { name: 'commit-fails', amount: 10, condition: only(ids) });
    // A deferred constraint trigger: the audits are refused at COMMIT, after the gateway was told.
    await em(app).execute(`
      create or replace function test_refuse_commit() returns trigger language plpgsql as $$
      begin
        if new.user_id like 'cf-%' then raise exception 'commit refused by the test'; end if;
        return new;
      end $$`);
    await em(app).execute(
      `create constraint trigger test_refuse_commit after insert on quota_audit
       deferrable initially deferred for each row execute function test_refuse_commit()`,
    );
    simulator.clearCalls();
    try {
      expect(await runAndWait(app, strategy.id)).toMatchObject({ processed: 5, succeeded: 0, failed: 5 });
    } finally {
      await em(app).execute('drop trigger if exists test_refuse_commit on quota_audit');
      await em(app).execute('drop function if exists test_refuse_commit()');
    }
    for (const execution of await executionsOf(app, strategy.id)) {
      expect(execution, execution.user_id).toMatchObject({
        status: 'failed',
        error: expect.stringMatching(/^INTERNAL_SERVER_ERROR: /),
      });
    }
    for (const id of ids) {
      expect(totalsSetFor(id), id).toEqual(['15', '5']);
      expect(simulator.getUser(id).total, id).toBe(500);
      expect(await batchAmounts(id), id).toEqual(['5.00']);
    }
    expect(await rechargeAuditsOf(app, strategy.id)).toEqual([]);
    await checkInvariants(app);

    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 5, failed: 0 });
    for (const id of ids) expect(simulator.getUser(id).total, id).toBe(1500);
    await checkInvariants(app);
  });
});

describe('periodic strategies granted in chunks', () => {
  test('maxExecPerUser across fires: each fire grants only users below the maximum', async () => {
    const ids = await usersFor('pm', 8);
    const strategy = await createStrategy(app, {
      name: 'periodic-chunk-limit',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      amount: 1,
      maxExecPerUser: 2,
      condition: only(ids.slice(0, 4)),
    });
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 4 });
    const update = 'mutation($id: ID!, $input: UpdateStrategyInput!) { updateStrategy(id: $id, input: $input) { id } }';
    await app.gql(update, { id: strategy.id, input: { condition: only(ids) } }, { token: app.adminToken });
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 8 });
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 4 });
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 0 });
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 2])));
    for (const id of ids) expect(simulator.getUser(id).total, id).toBe(200);
    await checkInvariants(app);
  });

  test('two fires that both claimed the users: the chunk that locks second completes none past the maximum', async () => {
    const ids = await usersFor('pr', 6);
    const strategy = await createStrategy(app, {
      name: 'periodic-chunk-race',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      amount: 1,
      maxExecPerUser: 1,
      condition: only(ids),
    });
    // Holding the first user's ledger lock stops both fires' chunk transactions after their claims;
    // once released, one completes every user and the other finds them at the maximum.
    let runs: string[] = [];
    await app.app.services.ledger.withUserLedger(em(app), ids[0]!, async () => {
      runs = (await Promise.all([runStrategy(app, strategy.id), runStrategy(app, strategy.id)])).map((run) => run.id);
      await advisoryLockWaiters(em(app), 2);
    });
    const finished = await Promise.all(runs.map((id) => waitForRun(app, id)));
    expect(finished.map((run) => run.succeeded).sort()).toEqual([0, 6]);
    expect(finished.every((run) => run.failed === 0)).toBe(true);
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    // The losing fire's claims are released, as a one-user grant's would be.
    const [left] = await em(app).execute<{ n: string }[]>(
      `select count(*)::text as n from quota_execute where strategy_id = ? and status <> 'completed'`,
      [strategy.id],
    );
    expect(left!.n).toBe('0');
    expect(await rechargeAuditsOf(app, strategy.id)).toHaveLength(6);
    for (const id of ids) expect(simulator.getUser(id).total, id).toBe(100);
    await checkInvariants(app);
  });
});
