import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeCursor } from '../../src/graphql/pagination.js';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
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
  triggerScan,
  waitForRun,
} from './strategy-support.js';

/** SPEC §4 execution: exactly once per single strategy and per fire, maxExecPerUser, failures, conditions in SQL. */

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'strategy execution' });
});
afterAll(async () => app?.stop());

function admin<T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}) {
  return app.gql<T>(query, variables, { token: app.adminToken });
}

/** previewCondition's counts and sample; throws on a GraphQL error. */
async function previewOf(condition: string): Promise<Record<string, unknown>> {
  const response = await admin<{ previewCondition: Record<string, unknown> }>(
    'query($e: String!) { previewCondition(expression: $e) { matchedUsers undecidedUsers sampleUserIds } }',
    { e: condition },
  );
  if (!response.data) throw new Error(`previewCondition failed: ${JSON.stringify(response.errors)}`);
  return response.data.previewCondition;
}

const UPDATE = 'mutation($id: ID!, $input: UpdateStrategyInput!) { updateStrategy(id: $id, input: $input) { id } }';

/** Users of one test: their own prefix keeps tests apart in the shared directory. */
async function usersFor(prefix: string, count: number, attributes: Parameters<typeof numberedUsers>[2] = {}) {
  const users = numberedUsers(prefix, count, attributes);
  await addUsers(app, users);
  return users.map((user) => user.id);
}

function only(prefix: string): string {
  return `match-user(${Array.from({ length: 30 }, (_, i) => `"${prefix}-${String(i + 1).padStart(3, '0')}"`).join(', ')})`;
}

describe('single strategies', () => {
  test('grant each matching user once, however often they run', async () => {
    const ids = await usersFor('once', 4);
    const strategy = await createStrategy(app, { name: 'single-once', amount: 25.5, condition: only('once') });
    const first = await runAndWait(app, strategy.id);
    expect(first).toMatchObject({
      type: 'STRATEGY',
      status: 'SUCCEEDED',
      processed: 4,
      succeeded: 4,
      failed: 0,
      error: null,
    });
    const second = await runAndWait(app, strategy.id);
    expect(second).toMatchObject({ status: 'SUCCEEDED', processed: 0, succeeded: 0 });
    const scan = await waitForRun(app, (await triggerScan(app)).id);
    expect(scan.status).toBe('SUCCEEDED');
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    for (const id of ids) expect(app.simulator.getUser(id).total).toBe(2550);
    const audits = await rechargeAuditsOf(app, strategy.id);
    expect(audits).toEqual(ids.map((id) => ({ user_id: id, amount: '25.50' })));
    await checkInvariants(app);
  });

  test('one scan run gives every strategy it grants the same batch number, however long it takes', async () => {
    await usersFor('onebatch', 2);
    const first = await createStrategy(app, { name: 'one-batch-a', amount: 1, condition: only('onebatch') });
    const second = await createStrategy(app, { name: 'one-batch-b', amount: 2, condition: only('onebatch') });
    // Each strategy's grants take over a second, so the second strategy starts in another second.
    app.simulator.setFault('setTotal', { kind: 'slow', delayMs: 1_100 });
    try {
      expect((await waitForRun(app, (await triggerScan(app)).id)).status).toBe('SUCCEEDED');
    } finally {
      app.simulator.clearFaults();
    }
    const batches = await em(app).execute<{ batch_number: string }[]>(
      'select distinct batch_number from quota_execute where strategy_id in (?, ?)',
      [first.id, second.id],
    );
    expect(batches).toHaveLength(1);
    expect((await executionsOf(app, second.id)).length).toBe(2);
    await checkInvariants(app);
  });

  test('two runStrategy at once, and runStrategy racing triggerScan, grant each user once', async () => {
    const ids = await usersFor('race', 30);
    const strategy = await createStrategy(app, { name: 'single-race', amount: 1, condition: only('race') });
    const runs = await Promise.all([runStrategy(app, strategy.id), runStrategy(app, strategy.id), triggerScan(app)]);
    expect(new Set(runs.map((run) => run.id)).size).toBe(3);
    const finished = await Promise.all(runs.map((run) => waitForRun(app, run.id)));
    expect(finished.every((run) => run.status === 'SUCCEEDED')).toBe(true);
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    expect((await rechargeAuditsOf(app, strategy.id)).length).toBe(30);
    for (const id of ids) expect(app.simulator.getUser(id).total).toBe(100);
    await checkInvariants(app);
  });

  test('the database refuses a second processing/completed execution of a single strategy', async () => {
    await usersFor('constraint', 1);
    const strategy = await createStrategy(app, { name: 'single-constraint', condition: only('constraint') });
    await runAndWait(app, strategy.id);
    const insert = () =>
      em(app).execute(
        `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, single)
         values (?, 'constraint-001', '20260101000000', 'completed', now() + interval '1 day', 1, 'manual-test', true)`,
        [strategy.id],
      );
    await expect(insert()).rejects.toThrow(/quota_execute_single_once_key/);
  });

  test('the scan runs enabled single strategies only', async () => {
    await usersFor('scan', 2);
    const enabled = await createStrategy(app, { name: 'scan-enabled', condition: only('scan') });
    const disabled = await createStrategy(app, { name: 'scan-disabled', condition: only('scan'), enabled: false });
    const periodic = await createStrategy(app, {
      name: 'scan-periodic',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      condition: only('scan'),
    });
    const run = await waitForRun(app, (await triggerScan(app)).id);
    expect(run.status).toBe('SUCCEEDED');
    expect(Object.keys(await completedPerUser(app, enabled.id))).toHaveLength(2);
    expect(await executionsOf(app, disabled.id)).toHaveLength(0);
    expect(await executionsOf(app, periodic.id)).toHaveLength(0);
    await checkInvariants(app);
  });
});

describe('periodic strategies', () => {
  test('each run is a fire of its own; unlimited grants once per fire', async () => {
    const ids = await usersFor('fire', 3);
    const strategy = await createStrategy(app, {
      name: 'periodic-unlimited',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      amount: 2,
      condition: only('fire'),
    });
    for (let i = 0; i < 3; i++) await runAndWait(app, strategy.id);
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 3])));
    const executions = await executionsOf(app, strategy.id);
    const perFire = new Map<string, number>();
    for (const execution of executions) perFire.set(execution.fire_key, (perFire.get(execution.fire_key) ?? 0) + 1);
    expect([...perFire.values()]).toEqual([3, 3, 3]);
    expect([...perFire.keys()].every((key) => /^run:\d+$/.test(key))).toBe(true);
    for (const id of ids) expect(app.simulator.getUser(id).total).toBe(600);
    await checkInvariants(app);
  });

  test('maxExecPerUser 1 and 2; raising grants more, lowering stops and takes nothing back', async () => {
    const ids = await usersFor('limit', 2);
    const strategy = await createStrategy(app, {
      name: 'periodic-limit',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      amount: 1,
      maxExecPerUser: 1,
      condition: only('limit'),
    });
    await runAndWait(app, strategy.id);
    const blocked = await runAndWait(app, strategy.id);
    expect(blocked).toMatchObject({ processed: 0, succeeded: 0 });
    expect(await completedPerUser(app, strategy.id)).toEqual({ [ids[0]!]: 1, [ids[1]!]: 1 });

    await admin(UPDATE, { id: strategy.id, input: { maxExecPerUser: 2 } });
    await runAndWait(app, strategy.id);
    await runAndWait(app, strategy.id);
    expect(await completedPerUser(app, strategy.id)).toEqual({ [ids[0]!]: 2, [ids[1]!]: 2 });

    await admin(UPDATE, { id: strategy.id, input: { maxExecPerUser: 1 } });
    await runAndWait(app, strategy.id);
    expect(await completedPerUser(app, strategy.id)).toEqual({ [ids[0]!]: 2, [ids[1]!]: 2 });
    for (const id of ids) expect(app.simulator.getUser(id).total).toBe(200);

    await admin(UPDATE, { id: strategy.id, input: { maxExecPerUser: 0 } });
    await runAndWait(app, strategy.id);
    expect(await completedPerUser(app, strategy.id)).toEqual({ [ids[0]!]: 3, [ids[1]!]: 3 });
    await checkInvariants(app);
  });

  test('maxExecPerUser holds when fires run at the same time', async () => {
    const ids = await usersFor('limitrace', 10);
    const strategy = await createStrategy(app, {
      name: 'periodic-limit-race',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      maxExecPerUser: 1,
      condition: only('limitrace'),
    });
    const runs = await Promise.all(Array.from({ length: 4 }, () => runStrategy(app, strategy.id)));
    await Promise.all(runs.map((run) => waitForRun(app, run.id)));
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    expect((await rechargeAuditsOf(app, strategy.id)).length).toBe(10);
    // A claim that lost to the limit leaves nothing behind.
    const [left] = await em(app).execute<{ n: string }[]>(
      `select count(*)::text as n from quota_execute where strategy_id = ? and status <> 'completed'`,
      [strategy.id],
    );
    expect(left!.n).toBe('0');
    await checkInvariants(app);
  });

  test('the database refuses a second execution of a user in the same fire', async () => {
    await usersFor('samefire', 1);
    const strategy = await createStrategy(app, {
      name: 'periodic-same-fire',
      type: 'PERIODIC',
      periodicExpr: '@yearly',
      condition: only('samefire'),
    });
    const run = await runAndWait(app, strategy.id);
    await expect(
      em(app).execute(
        `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, single)
         values (?, 'samefire-001', '20260101000000', 'failed', now(), 1, ?, false)`,
        [strategy.id, `run:${run.id}`],
      ),
    ).rejects.toThrow(/quota_execute_fire_once_key/);
  });
});

describe('enable, disable, failures', () => {
  test('disable stops runs (runStrategy → BAD_USER_INPUT, the scan skips it); enable resumes', async () => {
    const ids = await usersFor('pause', 2);
    const strategy = await createStrategy(app, { name: 'pausable', condition: only('pause') });
    await admin('mutation($id: ID!) { disableStrategy(id: $id) { id } }', { id: strategy.id });
    const refused = await admin('mutation($id: ID!) { runStrategy(id: $id) { id } }', { id: strategy.id });
    expect(errorCode(refused)).toBe('BAD_USER_INPUT');
    await waitForRun(app, (await triggerScan(app)).id);
    expect(await executionsOf(app, strategy.id)).toHaveLength(0);

    await admin('mutation($id: ID!) { enableStrategy(id: $id) { id } }', { id: strategy.id });
    await waitForRun(app, (await triggerScan(app)).id);
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
    await checkInvariants(app);
  });

  test('runStrategy of a missing strategy → NOT_FOUND', async () => {
    for (const id of ['777777', 'abc']) {
      expect(errorCode(await admin('mutation($id: ID!) { runStrategy(id: $id) { id } }', { id }))).toBe('NOT_FOUND');
    }
  });

  test('a gateway failure leaves a FAILED execution and nothing else; the next run completes it', async () => {
    const [id] = await usersFor('gwfail', 1);
    const strategy = await createStrategy(app, { name: 'gateway-fails', amount: 7, condition: only('gwfail') });
    app.simulator.setFault('setTotal', { kind: 'status', status: 503 });
    try {
      const failed = await runAndWait(app, strategy.id);
      expect(failed).toMatchObject({ status: 'SUCCEEDED', processed: 1, succeeded: 0, failed: 1 });
    } finally {
      app.simulator.clearFaults();
    }
    const [execution] = await executionsOf(app, strategy.id);
    expect(execution).toMatchObject({ status: 'failed', error: expect.stringMatching(/^GATEWAY_UNAVAILABLE: /) });
    const batches = await em(app).execute('select 1 from quota where user_id = ?', [id]);
    expect(batches).toHaveLength(0);
    expect(await rechargeAuditsOf(app, strategy.id)).toHaveLength(0);
    expect(app.simulator.getUser(id!).total).toBe(0);

    const listed = await admin<{
      strategyExecutions: { totalCount: number; nodes: { status: string; error: string }[] };
    }>(
      'query($id: ID!) { strategyExecutions(strategyId: $id, status: FAILED) { totalCount nodes { status error } } }',
      { id: strategy.id },
    );
    expect(listed.data!.strategyExecutions).toMatchObject({ totalCount: 1, nodes: [{ status: 'FAILED' }] });

    const retried = await runAndWait(app, strategy.id);
    expect(retried).toMatchObject({ processed: 1, succeeded: 1, failed: 0 });
    const after = await executionsOf(app, strategy.id);
    expect(after.map((row) => row.status)).toEqual(['failed', 'completed']);
    expect(app.simulator.getUser(id!).total).toBe(700);
    await checkInvariants(app);
  });

  test('a gateway failure while evaluating quota-le skips and counts the user; the next run grants them', async () => {
    const [id] = await usersFor('qle', 1);
    const strategy = await createStrategy(app, {
      name: 'quota-le-fails',
      condition: `and(${only('qle')}, quota-le("m", 5))`,
    });
    app.simulator.setFault('getUsed', { kind: 'status', status: 500 });
    try {
      expect(await runAndWait(app, strategy.id)).toMatchObject({ processed: 1, succeeded: 0, failed: 1 });
    } finally {
      app.simulator.clearFaults();
    }
    expect(await executionsOf(app, strategy.id)).toHaveLength(0);
    expect(await runAndWait(app, strategy.id)).toMatchObject({ processed: 1, succeeded: 1, failed: 0 });
    expect(await completedPerUser(app, strategy.id)).toEqual({ [id!]: 1 });
    await checkInvariants(app);
  });

  // quota-le keeps every user undecided in SQL, so the evaluator reads their times, as the scans load them.
  test.each([
    {
      times: 'register-before and access-after',
      users: [
        { id: 'when-old', createdAt: '2024-06-01T00:00:00Z', accessTime: '2026-03-01T00:00:00Z' },
        { id: 'when-new', createdAt: '2026-02-01T00:00:00Z', accessTime: '2026-03-01T00:00:00Z' },
        { id: 'when-idle', createdAt: '2024-06-01T00:00:00Z', accessTime: '2025-03-01T00:00:00Z' },
        // Half a millisecond past the instant: both SQL and the evaluator compare at whole milliseconds.
        { id: 'when-edge', createdAt: '2025-01-01T00:00:00.0005+08:00', accessTime: '2026-03-01T00:00:00Z' },
      ],
      matched: ['when-edge', 'when-old'],
    },
    {
      // PostgreSQL lets the login system store them; the directory is not ours to clean up.
      times: '±infinity in the directory',
      users: [
        { id: 'inf-future', createdAt: '-infinity', accessTime: 'infinity' },
        { id: 'inf-past', createdAt: 'infinity', accessTime: '-infinity' },
        { id: 'inf-plain', createdAt: '2024-06-01T00:00:00Z', accessTime: '2026-03-01T00:00:00Z' },
      ],
      matched: ['inf-future', 'inf-plain'],
    },
  ])('$times: decided for users the gateway leaves to the evaluator (run and preview)', async ({ users, matched }) => {
    await addUsers(app, users);
    const ids = users.map((user) => `"${user.id}"`).join(', ');
    const condition = `and(match-user(${ids}), quota-le("m", 5), register-before("2025-01-01"), access-after("2026-01-01"))`;
    expect(await previewOf(condition)).toEqual({
      matchedUsers: matched.length,
      undecidedUsers: 0,
      sampleUserIds: matched,
    });
    const strategy = await createStrategy(app, { name: `by-times-${users[0]!.id}`, condition });
    expect(await runAndWait(app, strategy.id)).toMatchObject({
      status: 'SUCCEEDED',
      succeeded: matched.length,
      failed: 0,
    });
    expect(await completedPerUser(app, strategy.id)).toEqual(Object.fromEntries(matched.map((id) => [id, 1])));
    await checkInvariants(app);
  });

  test('a strategy deleted while its run decides grants nobody, and the run ends cleanly', async () => {
    const ids = await usersFor('gone', 2);
    const strategy = await createStrategy(app, {
      name: 'deleted-mid-run',
      condition: `and(${only('gone')}, quota-le("m", 5))`,
    });
    // The run is held at the gateway while it decides quota-le, after its last "still enabled?" check;
    // the delete lands then, so the run's claim meets the foreign key of a strategy that is gone.
    app.simulator.setFault('getUsed', { kind: 'hold' });
    try {
      const run = await runStrategy(app, strategy.id);
      const deadline = Date.now() + 10_000;
      while (app.simulator.calls({ route: 'getUsed', outcome: 'pending' }).length === 0) {
        if (Date.now() > deadline) throw new Error('the run never asked the gateway');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const deleted = await admin<{ deleteStrategy: boolean }>('mutation($id: ID!) { deleteStrategy(id: $id) }', {
        id: strategy.id,
      });
      expect(deleted.data?.deleteStrategy).toBe(true);
      app.simulator.clearFaults();
      app.simulator.release();
      expect(await waitForRun(app, run.id)).toMatchObject({
        status: 'SUCCEEDED',
        succeeded: 0,
        failed: 0,
        error: null,
      });
    } finally {
      app.simulator.clearFaults();
      app.simulator.release();
    }
    expect(await executionsOf(app, strategy.id)).toHaveLength(0);
    const batches = await em(app).execute('select 1 from quota where user_id in (?, ?)', [ids[0], ids[1]]);
    expect(batches).toHaveLength(0);
    await checkInvariants(app);
  });

  test('a claim left processing by a run that is over is retried', async () => {
    const [id] = await usersFor('stale', 1);
    const strategy = await createStrategy(app, { name: 'stale-claim', condition: only('stale') });
    const [deadRun] = await em(app).execute<{ id: string }[]>(
      `insert into job_run (type, job_key, exclusive, trigger, status, finished_at, error)
       values ('STRATEGY', 'scan', true, 'SCHEDULE', 'FAILED', now(), 'INTERRUPTED: test') returning id::text`,
    );
    await em(app).execute(
      `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, job_run_id, single)
       values (?, ?, '20260101000000', 'processing', now() + interval '1 day', 10, 'at:dead', ?, true)`,
      [strategy.id, id, deadRun!.id],
    );
    expect(await runAndWait(app, strategy.id)).toMatchObject({ succeeded: 1 });
    const rows = await executionsOf(app, strategy.id);
    expect(rows.map((row) => [row.status, row.error])).toEqual([
      ['failed', expect.stringMatching(/^INTERRUPTED/)],
      ['completed', null],
    ]);
    await checkInvariants(app);
  });
});

describe('conditions filter in SQL', () => {
  test('only matching users are granted, and only users quota-le leaves open cost a gateway look-up', async () => {
    await addUsers(app, [
      {
        id: 'cond-a',
        vip: 3,
        githubStar: 'zgsm-ai.zgsm, openai.gpt-4',
        company: 'Acme',
        createdAt: '2024-01-01T00:00:00Z',
      },
      { id: 'cond-b', vip: 1, githubStar: 'zgsm-ai.zgsm', company: 'Acme', createdAt: '2024-01-01T00:00:00Z' },
      { id: 'cond-c', vip: 5, githubStar: 'openai.gpt-4', company: 'Globex', accessTime: '2026-06-01T00:00:00Z' },
      { id: 'cond-d', vip: 5, githubStar: null, company: null, createdAt: '2026-06-01T00:00:00Z' },
    ]);
    // Remaining quota (total − used) at the gateway: cond-a and cond-c none, cond-b and cond-d some. The
    // grants of earlier cases raise the totals, so `used` is set again before each case.
    const setRemaining = () => {
      for (const id of ['cond-a', 'cond-c']) app.simulator.setUser(id, { used: app.simulator.getUser(id).total });
      for (const id of ['cond-b', 'cond-d']) app.simulator.setUser(id, { used: 0 });
    };
    const scope = 'match-user("cond-a", "cond-b", "cond-c", "cond-d")';
    // [condition, users granted, users whose gateway total is read]. Only quota-le reads the gateway
    // (condition-context.ts), so the look-ups are exactly the users the rest of the condition leaves open.
    const cases: [string, string[], string[]][] = [
      ['is-vip(3)', ['cond-a', 'cond-c', 'cond-d'], []],
      ['github-star("openai.gpt-4")', ['cond-a', 'cond-c'], []],
      ['belong-to("Acme", "Initech")', ['cond-a', 'cond-b'], []],
      ['register-before("2025-01-01")', ['cond-a', 'cond-b'], []],
      ['access-after("2026-01-01 00:00:00")', ['cond-c'], []],
      ['not(or(is-vip(5), belong-to("Acme")))', [], []],
      ['and(is-vip(1), not(github-star("zgsm-ai.zgsm")))', ['cond-c', 'cond-d'], []],
      // is-vip decides cond-a, cond-c, cond-d true: only cond-b is asked (quota left: not granted).
      ['or(is-vip(3), quota-le("m", 0))', ['cond-a', 'cond-c', 'cond-d'], ['cond-b']],
      // belong-to decides cond-c and cond-d false: only the Acme users are asked.
      ['and(belong-to("Acme"), quota-le("m", 0))', ['cond-a'], ['cond-a', 'cond-b']],
      // Decided both ways without the gateway: cond-a, cond-b true (registered early), cond-d false (no star).
      [
        'or(register-before("2025-01-01"), and(github-star("openai.gpt-4"), quota-le("m", 0)))',
        ['cond-a', 'cond-b', 'cond-c'],
        ['cond-c'],
      ],
    ];
    for (const [index, [condition, expected, asked]] of cases.entries()) {
      setRemaining();
      app.simulator.clearCalls();
      const strategy = await createStrategy(app, { name: `cond-${index}`, condition: `and(${scope}, ${condition})` });
      await runAndWait(app, strategy.id);
      const lookedUp = app.simulator.calls({ route: 'getTotal' }).map((call) => call.params.user_id);
      expect([condition, Object.keys(await completedPerUser(app, strategy.id)), lookedUp.sort()]).toEqual([
        condition,
        expected,
        asked,
      ]);
    }
    await checkInvariants(app);
  });

  test('quota-le asks the gateway only for users the rest of the condition has not decided', async () => {
    await addUsers(app, [
      { id: 'mix-vip', vip: 9 },
      { id: 'mix-low', vip: 0 },
      { id: 'mix-rich', vip: 0 },
    ]);
    app.simulator.setUser('mix-low', { total: 500, used: 0 });
    app.simulator.setUser('mix-rich', { total: 1_000_000, used: 0 });
    app.simulator.clearCalls();
    const strategy = await createStrategy(app, {
      name: 'mixed-gateway',
      condition: 'and(match-user("mix-vip", "mix-low", "mix-rich"), or(is-vip(9), quota-le("any", 10)))',
    });
    await runAndWait(app, strategy.id);
    expect(Object.keys(await completedPerUser(app, strategy.id))).toEqual(['mix-low', 'mix-vip']);
    const asked = new Set(app.simulator.calls({ route: 'getTotal' }).map((call) => call.params.user_id));
    expect([...asked].sort()).toEqual(['mix-low', 'mix-rich']);
  });
});

describe('executions', () => {
  test('strategyExecutions continues after the cursor row, even once that row is gone and newer ones arrived', async () => {
    await usersFor('kpage', 4);
    const strategy = await createStrategy(app, { name: 'keyset-paged', condition: only('kpage') });
    await runAndWait(app, strategy.id); // one claim statement: four executions with one create_time (ties)
    const PAGE = `query($id: ID!, $after: String) { strategyExecutions(strategyId: $id, first: 2, after: $after) {
      nodes { id userId } pageInfo { hasNextPage endCursor } } }`;
    type Page = { nodes: { id: string; userId: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string } };
    const first = (await admin<{ strategyExecutions: Page }>(PAGE, { id: strategy.id })).data!.strategyExecutions;
    expect(first.nodes.map((node) => node.userId)).toEqual(['kpage-004', 'kpage-003']);
    // The cursor's own row is deleted (as a released claim is) and a newer execution arrives on top.
    await em(app).execute('delete from quota_execute where id = ?', [first.nodes[1]!.id]);
    await em(app).execute(
      `insert into quota_execute (strategy_id, user_id, batch_number, status, expiry_date, amount, fire_key, single, create_time)
       values (?, 'kpage-late', '20990101000000', 'failed', now() + interval '1 day', 10, 'late', true, now() + interval '1 hour')`,
      [strategy.id],
    );
    const second = (
      await admin<{ strategyExecutions: Page }>(PAGE, { id: strategy.id, after: first.pageInfo.endCursor })
    ).data!.strategyExecutions;
    expect(second.nodes.map((node) => node.userId)).toEqual(['kpage-002', 'kpage-001']);
    expect(second.pageInfo.hasNextPage).toBe(false);
  });

  test("strategyExecutions: a forged cursor at PostgreSQL's time limits is BAD_USER_INPUT or a page, never an internal error", async () => {
    const strategy = await createStrategy(app, { name: 'cursor-edges', condition: only('nobody-at-all') });
    const PAGE = `query($id: ID!, $after: String) { strategyExecutions(strategyId: $id, first: 2, after: $after) {
      totalCount } }`;
    const page = (key: string) => admin(PAGE, { id: strategy.id, after: encodeCursor(3, key) });
    // The first timestamp PostgreSQL stores (4714-11-24 BC) and the largest the cursor takes (year 33658).
    for (const edge of ['-210866803200000000/1', '999999999999999999/1']) {
      expect((await page(edge)).errors, edge).toBeUndefined();
    }
    // Before it: refused as a cursor (far before, PostgreSQL failed the query: INTERNAL_SERVER_ERROR).
    for (const before of ['-210866803200000001/1', '-999999999999999999/1']) {
      const response = await page(before);
      expect(errorCode(response), before).toBe('BAD_USER_INPUT');
      expect(response.errors![0]!.message).toBe('after is not a valid cursor');
    }
  });

  test('strategyExecutions pages newest first, filters by status, NOT_FOUND for a missing strategy', async () => {
    await usersFor('page', 5);
    const strategy = await createStrategy(app, { name: 'paged', condition: only('page') });
    const run = await runAndWait(app, strategy.id);
    const response = await admin<{
      strategyExecutions: {
        totalCount: number;
        nodes: {
          userId: string;
          strategyId: string;
          status: string;
          batchNumber: string;
          amount: number;
          error: null;
        }[];
        pageInfo: { hasNextPage: boolean; endCursor: string };
      };
    }>(
      `query($id: ID!) { strategyExecutions(strategyId: $id, first: 2) { totalCount
        nodes { id strategyId userId batchNumber status amount expiryDate error createdAt updatedAt }
        pageInfo { hasNextPage endCursor } } }`,
      { id: strategy.id },
    );
    const page = response.data!.strategyExecutions;
    expect(page.totalCount).toBe(5);
    expect(page.nodes.map((node) => node.userId)).toEqual(['page-005', 'page-004']);
    expect(page.nodes[0]).toMatchObject({ strategyId: strategy.id, status: 'COMPLETED', amount: 10, error: null });
    expect(page.nodes[0]!.batchNumber).toMatch(/^\d{14}$/);
    const [runRow] = await em(app).execute<{ started_at: Date }[]>('select started_at from job_run where id = ?', [
      run.id,
    ]);
    expect(runRow).toBeDefined();
    const next = await admin<{ strategyExecutions: { nodes: { userId: string }[] } }>(
      'query($id: ID!, $after: String) { strategyExecutions(strategyId: $id, first: 2, after: $after) { nodes { userId } } }',
      { id: strategy.id, after: page.pageInfo.endCursor },
    );
    expect(next.data!.strategyExecutions.nodes.map((node) => node.userId)).toEqual(['page-003', 'page-002']);
    const completed = await admin<{ strategyExecutions: { totalCount: number } }>(
      'query($id: ID!) { strategyExecutions(strategyId: $id, status: COMPLETED) { totalCount } }',
      { id: strategy.id },
    );
    expect(completed.data!.strategyExecutions.totalCount).toBe(5);
    const failed = await admin<{ strategyExecutions: { totalCount: number } }>(
      'query($id: ID!) { strategyExecutions(strategyId: $id, status: FAILED) { totalCount } }',
      { id: strategy.id },
    );
    expect(failed.data!.strategyExecutions.totalCount).toBe(0);
    for (const id of ['919191', 'x']) {
      expect(
        errorCode(await admin('query($id: ID!) { strategyExecutions(strategyId: $id) { totalCount } }', { id })),
      ).toBe('NOT_FOUND');
    }
  });

  test('Strategy.executions of a page of strategies is loaded in one round of queries', async () => {
    await usersFor('batch', 2);
    const created = [];
    for (let i = 0; i < 4; i++) {
      const strategy = await createStrategy(app, { name: `batched-${i}`, condition: only('batch') });
      created.push(strategy);
      if (i % 2 === 0) await runAndWait(app, strategy.id);
    }
    let executionQueries = 0;
    const connection = app.app.services.orm.em.getConnection();
    const original = connection.execute.bind(connection);
    connection.execute = ((...args: Parameters<typeof original>) => {
      if (String(args[0]).includes('quota_execute')) executionQueries += 1;
      return original(...args);
    }) as typeof connection.execute;
    try {
      const response = await admin<{
        strategies: { nodes: { name: string; executions: { totalCount: number; nodes: { userId: string }[] } }[] };
      }>(
        `{ strategies(first: 4, filter: { nameContains: "batched-" }) { nodes { name executions(first: 1) { totalCount nodes { userId } } } } }`,
      );
      expect(response.errors).toBeUndefined();
      expect(response.data!.strategies.nodes.map((node) => [node.name, node.executions.totalCount])).toEqual([
        ['batched-3', 0],
        ['batched-2', 2],
        ['batched-1', 0],
        ['batched-0', 2],
      ]);
      expect(response.data!.strategies.nodes[1]!.executions.nodes).toEqual([{ userId: 'batch-002' }]);
    } finally {
      connection.execute = original;
    }
    expect(executionQueries).toBe(2);
  });
});
