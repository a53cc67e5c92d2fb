import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { dropDatabase, uniqueDatabaseUrl } from '../support/database.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import {
  killAllServers,
  openDatabase,
  pollUntil,
  ServerProcess,
  seededRandom,
  serverEnv,
  tokenFor,
} from './server-process.js';

/**
 * Issue 6 item 2, SPEC §4 and §9: two server processes on one database and one gateway simulator.
 * 1. Under load through both — transfers and redemptions spread over both instances (some vouchers
 *    redeemed on both at once), deductions with one reference sent to both, a per-second PERIODIC
 *    strategy and the single-strategy scan scheduled on both, a manual EXPIRE_QUOTAS triggered on
 *    both — every fire runs once, nothing is granted, redeemed or deducted twice, and the ledger
 *    invariants hold (the gateway agrees with the ledger).
 * 2. SIGKILL of the instance running a scan in the middle of it, and a restart: the reaper marks the
 *    dead run FAILED, a later scan grants the rest, and every user is granted exactly once.
 */

const SEED = Number(process.env.TWO_INSTANCES_SEED ?? Date.now() % 1_000_000);
const random = seededRandom(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const CREATE_STRATEGY = 'mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }';
const DISABLE_STRATEGY = 'mutation($id: ID!) { disableStrategy(id: $id) { id enabled } }';
const TRIGGER_SCAN = 'mutation($type: ScanType!) { triggerScan(type: $type) { id status } }';
const TRANSFER_OUT = 'mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode totalAmount } }';
const TRANSFER_IN = 'mutation($code: String!) { transferIn(voucherCode: $code) { status amount } }';
const DEDUCT = 'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { id amount } }';

/** A job run whose heartbeat is 5 s old is taken for dead: the killed instance's scan is freed quickly. */
const STALE_AFTER_SECONDS = '5';

let simulator: GatewaySimulator;
let databaseUrl: string;
let orm: MikroORM;
const servers: Record<'a' | 'b', ServerProcess | undefined> = { a: undefined, b: undefined };
let env: Record<string, string>;
let admin: string;

function instance(name: 'a' | 'b'): ServerProcess {
  const server = servers[name];
  if (!server) throw new Error(`instance ${name} is not running`);
  return server;
}

function both(): ServerProcess[] {
  return [instance('a'), instance('b')];
}

async function sql<T = Record<string, unknown>>(query: string, params: unknown[] = []): Promise<T[]> {
  return orm.em.fork().execute<T[]>(query, params);
}

async function count(query: string, params: unknown[] = []): Promise<number> {
  const [row] = await sql<{ n: string | number }>(query, params);
  return Number(row?.n ?? 0);
}

async function addUsers(ids: string[], vip: number): Promise<void> {
  await sql(
    `insert into auth_users (id, name, vip, created_at)
     select id, 'User ' || id, ?, now() - interval '1 year' from jsonb_array_elements_text(?::jsonb) as ids(id)`,
    [vip, JSON.stringify(ids)],
  );
}

function numbered(prefix: string, amount: number): string[] {
  return Array.from({ length: amount }, (_, index) => `${prefix}-${String(index + 1).padStart(3, '0')}`);
}

async function createStrategy(server: ServerProcess, input: Record<string, unknown>): Promise<string> {
  const data = await server.must<{ createStrategy: { id: string } }>(
    CREATE_STRATEGY,
    { input: { title: `Title of ${input.name}`, ...input } },
    admin,
  );
  return data.createStrategy.id;
}

async function completedExecutions(strategyId: string): Promise<number> {
  return count(`select count(*) as n from quota_execute where strategy_id = ? and status = 'completed'`, [strategyId]);
}

/** Server logs of both instances, for failure messages. */
function logsOfBoth(): string {
  return (['a', 'b'] as const)
    .map((name) => `--- ${name} ---\n${servers[name]?.tail(25) ?? '(not running)'}`)
    .join('\n');
}

beforeAll(async () => {
  console.log(`two-instances seed: ${SEED} (TWO_INSTANCES_SEED=${SEED} repeats the choices)`);
  simulator = new GatewaySimulator();
  const gatewayUrl = await simulator.start(0);
  databaseUrl = uniqueDatabaseUrl('two_instances');
  env = serverEnv(databaseUrl, gatewayUrl, {
    // Schedules on: the single-strategy scan every 2 s on both instances, racing for each fire.
    SCAN_CRON: '*/2 * * * * *',
    JOB_STALE_AFTER_SECONDS: STALE_AFTER_SECONDS,
  });
  // Both at once on a database that does not exist yet: one creates it, both migrate under the lock.
  const [a, b] = await Promise.all([ServerProcess.start('a', env), ServerProcess.start('b', env)]);
  servers.a = a;
  servers.b = b;
  orm = await openDatabase(databaseUrl);
  admin = await tokenFor('ops-admin', true);
}, 90_000);

afterAll(async () => {
  await killAllServers();
  await orm?.close(true);
  await simulator?.stop();
  if (databaseUrl) await dropDatabase(databaseUrl);
});

describe('two instances on one database and one gateway', () => {
  it('under load through both, every fire runs once and nothing is granted, redeemed or deducted twice', async () => {
    const users = numbered('p1', 16);
    await addUsers(users, 0);
    const tokens = Object.fromEntries(await Promise.all(users.map(async (id) => [id, await tokenFor(id)] as const)));

    // Quota the old system left behind, expired yesterday, partly consumed on the gateway: what the
    // manual expiry below settles. Batch, audit and gateway total agree, as the invariants require.
    const expiredUsers = users.slice(0, 6);
    for (const userId of expiredUsers) {
      await sql(
        `with batch as (insert into quota (user_id, amount, expiry_date, status) values (?, 50, now() - interval '1 day', 'VALID')
           returning user_id, amount, expiry_date)
         insert into quota_audit (user_id, amount, operation, expiry_date, details, actor)
         select user_id, amount, 'RECHARGE', expiry_date, '{}', 'migrated' from batch`,
        [userId],
      );
      simulator.setUser(userId, { total: 5000, used: 2000 });
    }

    // Everyone's first quota: a single strategy, triggered on B (the 2-second scan may beat it to it).
    const welcome = await createStrategy(instance('a'), {
      name: 'welcome',
      type: 'SINGLE',
      amount: 100,
      condition: 'not(is-vip(5))',
    });
    await instance('b').must(TRIGGER_SCAN, { type: 'STRATEGY' }, admin);
    await pollUntil('the welcome grants', 20_000, async () => (await completedExecutions(welcome)) === users.length);
    const [{ expiry_date: welcomeExpiry }] = await sql<{ expiry_date: Date }>(
      'select expiry_date from quota_execute where strategy_id = ? limit 1',
      [welcome],
    );
    const expiryDate = new Date(welcomeExpiry).toISOString();

    // A fire every second, scheduled on both instances (B learns of it by polling).
    const periodic = await createStrategy(instance('b'), {
      name: 'every-second',
      type: 'PERIODIC',
      periodicExpr: '* * * * * *',
      amount: 1,
      condition: 'not(is-vip(5))',
    });

    // The load goes on for 8 s and until enough happened (3 periodic fires, 10 vouchers, 5 deductions),
    // 30 s at most: a busy machine gets the same amount of evidence, only later.
    let loadDone = false;
    const vouchers: { code: string; answers: string[] }[] = [];
    const refusedTransfers: string[] = [];
    const deductions: { reference: string; auditIds: (string | null)[]; codes: unknown[] }[] = [];
    const expiryRuns: string[] = [];

    const transferWorker = async () => {
      while (!loadDone) {
        const giver = pick(users);
        const receiver = pick(users.filter((id) => id !== giver));
        const issuer = pick(both());
        const out = await issuer.gql<{ transferOut: { voucherCode: string } }>(
          TRANSFER_OUT,
          { input: { receiverId: receiver, items: [{ amount: 1 + Math.floor(random() * 4), expiryDate }] } },
          tokens[giver],
        );
        if (!out.data) {
          refusedTransfers.push(String(out.errors?.[0]?.extensions?.code));
          continue;
        }
        const code = out.data.transferOut.voucherCode;
        // Half the vouchers are redeemed on both instances at once; the others on the other instance.
        const redeemers = random() < 0.5 ? both() : both().filter((server) => server !== issuer);
        const answers = await Promise.all(
          redeemers.map((server) =>
            server.gql<{ transferIn: { status: string } }>(TRANSFER_IN, { code }, tokens[receiver]),
          ),
        );
        vouchers.push({
          code,
          answers: answers.map((answer) => answer.data?.transferIn.status ?? JSON.stringify(answer.errors)),
        });
      }
    };

    const deductWorker = async () => {
      for (let serial = 1; !loadDone; serial++) {
        const reference = `p1-deduct-${serial}`;
        // Not the users with an expired batch: FIFO would deduct from it and change what the expiry finds.
        const input = { userId: pick(users.slice(6)), amount: 1, reason: 'load test', reference };
        // The same deduction sent to both instances at once, as a client retrying on another node would.
        const answers = await Promise.all(
          both().map((server) => server.gql<{ deductQuota: { id: string } }>(DEDUCT, { input }, admin)),
        );
        deductions.push({
          reference,
          auditIds: answers.map((answer) => answer.data?.deductQuota.id ?? null),
          codes: answers.map((answer) => answer.errors?.[0]?.extensions?.code),
        });
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
    };

    const expiryTrigger = async () => {
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const answers = await Promise.all(
        both().map((server) =>
          server.must<{ triggerScan: { id: string } }>(TRIGGER_SCAN, { type: 'EXPIRE_QUOTAS' }, admin),
        ),
      );
      expiryRuns.push(...answers.map((answer) => answer.triggerScan.id));
    };

    const monitor = async () => {
      const soft = Date.now() + 8_000;
      const hard = Date.now() + 30_000;
      while (Date.now() < hard) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        // More than 10 vouchers and 5 deductions, as asserted below: a worker may stop without adding one.
        if (Date.now() < soft || vouchers.length <= 10 || deductions.length <= 5) continue;
        const fullFires = await count(
          `select count(*) as n from job_run where job_key = ? and trigger = 'SCHEDULE' and succeeded = ?`,
          [`strategy:${periodic}`, users.length],
        );
        if (fullFires >= 3) break;
      }
      loadDone = true;
    };

    await Promise.all([
      monitor(),
      transferWorker(),
      transferWorker(),
      transferWorker(),
      deductWorker(),
      expiryTrigger(),
    ]);
    await instance('a').must(DISABLE_STRATEGY, { id: periodic }, admin);
    // A fire already claimed finishes; fires after the disable find the strategy disabled and grant nothing.
    // B hears of the disable only at its next poll (every 3 s) and claims such fires until then, each
    // RUNNING for a moment: the runs checked below are those claimed before the disable, all finished.
    const lastRunBeforeDisable = await count('select coalesce(max(id), 0) as n from job_run');
    await pollUntil('the periodic and expiry runs to finish', 20_000, async () => {
      const active = await count(
        `select count(*) as n from job_run
          where status in ('QUEUED', 'RUNNING') and job_key in (?, 'expire') and id <= ?`,
        [`strategy:${periodic}`, lastRunBeforeDisable],
      );
      return active === 0;
    });

    // Every fire of every job ran once: one job_run per fire key (the 2-second scan and the periodic).
    expect(
      await sql(
        'select fire_key, count(*)::int as n from job_run where fire_key is not null group by fire_key having count(*) > 1',
      ),
    ).toEqual([]);

    // Each periodic fire that ran granted every user once, and nothing failed.
    const fires = await sql<{ fire_key: string; status: string; failed: number; instance_id: string }>(
      `select fire_key, status, failed, instance_id from job_run
        where job_key = ? and trigger = 'SCHEDULE' and id <= ? order by id`,
      [`strategy:${periodic}`, lastRunBeforeDisable],
    );
    const grantedPerFire: number[] = [];
    for (const fire of fires) {
      expect(fire, logsOfBoth()).toMatchObject({ status: 'SUCCEEDED', failed: 0 });
      const instant = fire.fire_key.slice(fire.fire_key.indexOf('@') + 1);
      const perUser = await sql<{ user_id: string; n: number }>(
        `select user_id, count(*)::int as n from quota_execute
          where strategy_id = ? and fire_key = ? and status = 'completed' group by user_id`,
        [periodic, `at:${instant}`],
      );
      expect(perUser.every((row) => row.n === 1)).toBe(true);
      grantedPerFire.push(perUser.length);
    }
    const fullFires = grantedPerFire.filter((granted) => granted === users.length).length;
    // A fire is all or nothing here: it granted everyone, or it found the strategy disabled.
    expect(
      grantedPerFire.every((granted) => granted === 0 || granted === users.length),
      String(grantedPerFire),
    ).toBe(true);
    expect(fullFires).toBeGreaterThanOrEqual(3);

    // One RECHARGE audit per completed execution, per strategy and user: no grant doubled.
    const grantMismatches = await sql(
      `select x.strategy_id, x.user_id, x.done, coalesce(a.audits, 0) as audits
         from (select strategy_id, user_id, count(*)::int as done from quota_execute where status = 'completed'
               group by strategy_id, user_id) x
         left join (select strategy_id, user_id, count(*)::int as audits from quota_audit where operation = 'RECHARGE'
               and strategy_id is not null group by strategy_id, user_id) a
           on a.strategy_id = x.strategy_id and a.user_id = x.user_id
        where x.done <> coalesce(a.audits, 0)`,
    );
    expect(grantMismatches).toEqual([]);
    expect(await completedExecutions(welcome)).toBe(users.length);

    // Every voucher was redeemed exactly once, whichever instances raced for it.
    expect(vouchers.length).toBeGreaterThan(10);
    for (const voucher of vouchers) {
      const successes = voucher.answers.filter((status) => status === 'SUCCESS').length;
      expect(successes, JSON.stringify(voucher.answers)).toBe(1);
      expect(voucher.answers.every((status) => status === 'SUCCESS' || status === 'ALREADY_REDEEMED')).toBe(true);
    }
    const codes = JSON.stringify(vouchers.map((voucher) => voucher.code));
    const redemptions = await sql<{ operation: string; n: number }>(
      `select 'redemption' as operation, count(*)::int as n from voucher_redemption
        where voucher_code in (select jsonb_array_elements_text(?::jsonb))
       union all
       select operation, count(*)::int as n from quota_audit
        where voucher_code in (select jsonb_array_elements_text(?::jsonb)) group by operation`,
      [codes, codes],
    );
    expect(Object.fromEntries(redemptions.map((row) => [row.operation, row.n]))).toEqual({
      redemption: vouchers.length,
      TRANSFER_OUT: vouchers.length,
      TRANSFER_IN: vouchers.length,
    });
    expect(
      refusedTransfers.every((code) => code === 'INSUFFICIENT_QUOTA'),
      String(refusedTransfers),
    ).toBe(true);

    // A deduction sent to both instances with one reference deducted once, and both answered with it.
    expect(deductions.length).toBeGreaterThan(5);
    for (const deduction of deductions) {
      const [first, second] = deduction.auditIds;
      if (first === null || second === null) {
        expect(deduction.codes, deduction.reference).toEqual(['INSUFFICIENT_QUOTA', 'INSUFFICIENT_QUOTA']);
      } else {
        expect(second).toBe(first);
      }
    }
    expect(
      await sql(`select reference from quota_audit where operation = 'DEDUCT' group by reference having count(*) > 1`),
    ).toEqual([]);
    const deducted = deductions.filter((deduction) => deduction.auditIds[0] !== null).length;
    expect(await count(`select count(*) as n from quota_audit where operation = 'DEDUCT'`)).toBe(deducted);

    // The manual expiry, triggered on both at once, expired each old batch once.
    expect(expiryRuns).toHaveLength(2);
    const expireAudits = await sql<{ user_id: string; amount: string }>(
      `select user_id, amount::text from quota_audit where operation = 'EXPIRE' order by user_id`,
    );
    expect(expireAudits).toEqual(expiredUsers.map((userId) => ({ user_id: userId, amount: '-50.00' })));
    for (const userId of expiredUsers) expect(simulator.getUser(userId).used).toBe(0);

    await assertLedgerInvariants(orm.em.fork(), simulator);

    const byInstance = await sql<{ instance: string; runs: number }>(
      `select split_part(instance_id, '-', 1) as instance, count(*)::int as runs from job_run
        where trigger = 'SCHEDULE' group by 1 order by 1`,
    );
    console.log(
      `two-instances load: ${vouchers.length} vouchers (${vouchers.filter((v) => v.answers.length === 2).length} raced), ` +
        `${refusedTransfers.length} transfers refused, ${deductions.length} deductions sent twice (${deducted} applied), ` +
        `${fullFires} periodic fires granted ${users.length} users each; scheduled runs per instance pid: ` +
        `${byInstance.map((row) => `${row.instance}=${row.runs}`).join(', ')} (a=${instance('a').pid}, b=${instance('b').pid})`,
    );
  }, 90_000);

  it('SIGKILL of the instance running a scan, then a restart: the rest is granted, nobody twice', async () => {
    const users = numbered('p2', 300);
    await addUsers(users, 5);
    // Slow gateway writes stretch the scan over a few seconds, so there is a middle to kill it in.
    simulator.setFault('setTotal', { kind: 'slow', delayMs: 100 });
    const bulk = await createStrategy(instance('a'), {
      name: 'bulk',
      type: 'SINGLE',
      amount: 10,
      condition: 'is-vip(5)',
    });
    const started = await instance('b').must<{ triggerScan: { id: string } }>(
      TRIGGER_SCAN,
      { type: 'STRATEGY' },
      admin,
    );
    // The scan may already have been started by a scheduled fire on either instance: find its owner.
    let runId = started.triggerScan.id;
    // A chunk of users is granted in one transaction, its executions completed at its commit: the
    // middle of the scan is while the gateway is being told the chunk's totals.
    await pollUntil('the scan to set its first gateway totals', 20_000, async () => {
      const [run] = await sql<{ id: string; status: string }>(
        `select id::text, status from job_run where job_key = 'scan' and status = 'RUNNING'`,
      );
      if (run) runId = run.id;
      const totalsSet = simulator.calls({ route: 'setTotal' }).filter((call) => call.params.user_id?.startsWith('p2-'));
      return totalsSet.length >= 40;
    });
    const [running] = await sql<{ status: string; instance_id: string }>(
      'select status, instance_id from job_run where id = ?',
      [runId],
    );
    expect(running?.status, 'the scan finished before it could be killed').toBe('RUNNING');
    const victim = (['a', 'b'] as const).find((name) => instance(name).ownsInstanceId(running!.instance_id));
    expect(victim, `no instance owns ${running!.instance_id}`).toBeDefined();
    instance(victim!).kill('SIGKILL');
    const exit = await instance(victim!).exited;
    expect(exit.signal).toBe('SIGKILL');
    const grantedBeforeKill = await completedExecutions(bulk);
    expect(grantedBeforeKill).toBeLessThan(users.length);

    // The dead run holds the scan until the reaper sees its heartbeat stop.
    const restarted = await ServerProcess.start(victim!, env);
    servers[victim!] = restarted;
    await pollUntil('the rest of the users granted by a later scan', 45_000, async () => {
      return (await completedExecutions(bulk)) === users.length;
    }).catch((error) => {
      throw new Error(`${(error as Error).message}\n${logsOfBoth()}`);
    });

    const [dead] = await sql<{ status: string; error: string }>('select status, error from job_run where id = ?', [
      runId,
    ]);
    expect(dead).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^INTERRUPTED: /) });
    const finishers = await sql<{ status: string; succeeded: number }>(
      `select status, succeeded from job_run where job_key = 'scan' and id > ? and succeeded > 0`,
      [runId],
    );
    expect(finishers.length).toBeGreaterThanOrEqual(1);
    expect(finishers.every((run) => run.status === 'SUCCEEDED')).toBe(true);

    // Exactly once: one completed execution and one RECHARGE audit per user, and nothing left claimed.
    expect(
      await sql(
        `select user_id from quota_execute where strategy_id = ? and status = 'completed' group by user_id having count(*) > 1`,
        [bulk],
      ),
    ).toEqual([]);
    expect(
      await count(`select count(*) as n from quota_audit where strategy_id = ? and operation = 'RECHARGE'`, [bulk]),
    ).toBe(users.length);
    expect(
      await count(`select count(*) as n from quota_execute where strategy_id = ? and status = 'processing'`, [bulk]),
    ).toBe(0);
    const interrupted = await count(
      `select count(*) as n from quota_execute where strategy_id = ? and status = 'failed'`,
      [bulk],
    );

    // Grants the dead instance had sent to the gateway but not committed were granted again, absolutely.
    simulator.clearFaults();
    await pollUntil('no gateway call still held by the slow fault', 10_000, () =>
      simulator.calls({ outcome: 'pending' }).every((call) => call.route !== 'setTotal'),
    );
    await assertLedgerInvariants(orm.em.fork(), simulator);
    console.log(
      `two-instances kill: instance ${victim} killed after ${grantedBeforeKill} of ${users.length} grants; ` +
        `${interrupted} claims of the dead run released as FAILED and granted by a later scan`,
    );
  }, 90_000);
});
