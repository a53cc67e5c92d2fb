import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import {
  addUsers,
  createStrategy,
  em,
  STRATEGY_FIELDS,
  type StrategyView,
  strategyCount,
  strategyInput,
} from './strategy-support.js';

/** SPEC §4 strategy CRUD and validation, §3 validateCondition / previewCondition, §9 validateCron. */

let app: TestApp;
const clock = new SettableClock('Asia/Shanghai', '2026-11-15T04:00:00Z');

beforeAll(async () => {
  app = await startTestApp({ label: 'strategy crud', clock });
});
afterAll(async () => app?.stop());

const CREATE = `mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { ${STRATEGY_FIELDS} } }`;
const UPDATE = `mutation($id: ID!, $input: UpdateStrategyInput!) { updateStrategy(id: $id, input: $input) { ${STRATEGY_FIELDS} } }`;

function admin<T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}) {
  return app.gql<T>(query, variables, { token: app.adminToken });
}

async function storedStrategy(id: string): Promise<Record<string, unknown>> {
  const [row] = await em(app).execute('select * from quota_strategy where id = ?', [id]);
  return row as Record<string, unknown>;
}

describe('createStrategy', () => {
  test('stores every field and honours enabled: false', async () => {
    const created = await createStrategy(app, {
      name: 'welcome',
      title: 'Welcome gift',
      type: 'PERIODIC',
      amount: 12.5,
      model: 'gpt-4',
      periodicExpr: '0 0 8 * * *',
      condition: 'is-vip(1)',
      maxExecPerUser: 3,
      validityDays: 7,
      enabled: false,
    });
    expect(created).toMatchObject({
      name: 'welcome',
      title: 'Welcome gift',
      type: 'PERIODIC',
      amount: 12.5,
      model: 'gpt-4',
      periodicExpr: '0 0 8 * * *',
      condition: 'is-vip(1)',
      maxExecPerUser: 3,
      validityDays: 7,
      enabled: false,
      nextRunAt: null,
    });
    const row = await storedStrategy(created.id);
    expect(row).toMatchObject({ type: 'periodic', amount: '12.50', status: false, periodic_expr: '0 0 8 * * *' });
  });

  test('defaults: maxExecPerUser 0, enabled, default expiry; SINGLE ignores periodicExpr', async () => {
    const response = await admin<{ createStrategy: StrategyView }>(CREATE, {
      input: {
        name: 'defaults',
        title: 't',
        type: 'SINGLE',
        amount: 1,
        condition: 'true()',
        periodicExpr: 'not a cron',
      },
    });
    expect(response.errors).toBeUndefined();
    expect(response.data!.createStrategy).toMatchObject({
      maxExecPerUser: 0,
      enabled: true,
      validityDays: null,
      periodicExpr: null,
      model: null,
      nextRunAt: null,
    });
  });

  test('accepts the cron forms of SPEC §4 and stores them as given', async () => {
    for (const [index, expression] of [
      '0 0 8 * * *',
      '30 8 * * 1',
      '@yearly',
      '@annually',
      '@monthly',
      '@weekly',
      '@daily',
      '@midnight',
      '@hourly',
      ' 0 */5 * * * * ',
    ].entries()) {
      const created = await createStrategy(app, { name: `cron-${index}`, type: 'PERIODIC', periodicExpr: expression });
      expect(created.periodicExpr).toBe(expression);
      expect(created.nextRunAt).not.toBeNull();
    }
  });

  test('limits: name of 100 characters, title of 200, amount 0.01 and 1e9, validityDays 1', async () => {
    const name = 'n'.repeat(100);
    const created = await createStrategy(app, { name, title: 't'.repeat(200), amount: 1_000_000_000, validityDays: 1 });
    expect(created).toMatchObject({ name, amount: 1_000_000_000, validityDays: 1 });
    expect((await createStrategy(app, { name: 'cent', amount: 0.01 })).amount).toBe(0.01);
  });

  test('name and title are trimmed', async () => {
    const created = await createStrategy(app, { name: '  spaced  ', title: ' A title ' });
    expect(created).toMatchObject({ name: 'spaced', title: 'A title' });
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['empty name', { name: '' }, 'BAD_USER_INPUT'],
    ['blank name', { name: '   ' }, 'BAD_USER_INPUT'],
    ['name of 101 characters', { name: 'x'.repeat(101) }, 'BAD_USER_INPUT'],
    ['empty title', { title: '' }, 'BAD_USER_INPUT'],
    ['title of 201 characters', { title: 'x'.repeat(201) }, 'BAD_USER_INPUT'],
    ['amount 0', { amount: 0 }, 'BAD_USER_INPUT'],
    ['negative amount', { amount: -5 }, 'BAD_USER_INPUT'],
    ['amount with 3 decimals', { amount: 1.234 }, 'BAD_USER_INPUT'],
    ['amount above 1e9', { amount: 1_000_000_000.01 }, 'BAD_USER_INPUT'],
    ['negative maxExecPerUser', { maxExecPerUser: -1 }, 'BAD_USER_INPUT'],
    ['validityDays 0', { validityDays: 0 }, 'BAD_USER_INPUT'],
    ['negative validityDays', { validityDays: -3 }, 'BAD_USER_INPUT'],
    ['model of 101 characters', { model: 'm'.repeat(101) }, 'BAD_USER_INPUT'],
    ['PERIODIC without periodicExpr', { type: 'PERIODIC' }, 'INVALID_CRON'],
    ['PERIODIC with an empty periodicExpr', { type: 'PERIODIC', periodicExpr: '  ' }, 'INVALID_CRON'],
    ['PERIODIC with garbage', { type: 'PERIODIC', periodicExpr: 'every day' }, 'INVALID_CRON'],
    ['PERIODIC with 3 fields', { type: 'PERIODIC', periodicExpr: '* * *' }, 'INVALID_CRON'],
    ['PERIODIC with 7 fields', { type: 'PERIODIC', periodicExpr: '0 0 0 1 1 * 2030' }, 'INVALID_CRON'],
    ['PERIODIC with second 61', { type: 'PERIODIC', periodicExpr: '61 * * * * *' }, 'INVALID_CRON'],
    ['PERIODIC with @reboot', { type: 'PERIODIC', periodicExpr: '@reboot' }, 'INVALID_CRON'],
    ['an empty condition', { condition: '' }, 'INVALID_CONDITION'],
    ['an unknown function', { condition: 'is-admin()' }, 'INVALID_CONDITION'],
    ['an unbalanced condition', { condition: 'is-vip(1' }, 'INVALID_CONDITION'],
  ];
  test.each(refusals)('refuses %s and saves nothing', async (_label, override, code) => {
    const before = await strategyCount(app);
    const response = await admin(CREATE, { input: strategyInput({ name: `refused-${before}`, ...override } as never) });
    expect(errorCode(response)).toBe(code);
    expect(response.data).toBeNull();
    expect(await strategyCount(app)).toBe(before);
  });

  test('an invalid condition reports the message and its position', async () => {
    const response = await admin(CREATE, {
      input: strategyInput({ name: 'bad-condition', condition: 'and(true(), nope())' }),
    });
    expect(errorCode(response)).toBe('INVALID_CONDITION');
    expect(response.errors![0]!.extensions!.position).toBe(12);
    expect(response.errors![0]!.message).toMatch(/nope/);
  });

  test('a taken name → CONFLICT, also when two creates race', async () => {
    await createStrategy(app, { name: 'taken' });
    const again = await admin(CREATE, { input: strategyInput({ name: 'taken' }) });
    expect(errorCode(again)).toBe('CONFLICT');

    const racing = await Promise.all(
      Array.from({ length: 6 }, () => admin(CREATE, { input: strategyInput({ name: 'raced', title: 'race' }) })),
    );
    expect(racing.filter((response) => response.data?.createStrategy).length).toBe(1);
    expect(racing.filter((response) => errorCode(response) === 'CONFLICT').length).toBe(5);
    const [row] = await em(app).execute<{ n: string }[]>(
      `select count(*)::text as n from quota_strategy where name = 'raced'`,
    );
    expect(row!.n).toBe('1');
  });
});

describe('updateStrategy', () => {
  test('is partial: fields left out keep their values', async () => {
    const created = await createStrategy(app, {
      name: 'partial',
      amount: 5,
      validityDays: 3,
      model: 'm1',
      condition: 'is-vip(2)',
    });
    const response = await admin<{ updateStrategy: StrategyView }>(UPDATE, {
      id: created.id,
      input: { title: 'New title' },
    });
    expect(response.errors).toBeUndefined();
    expect(response.data!.updateStrategy).toMatchObject({
      ...created,
      title: 'New title',
      updatedAt: expect.any(String),
    });
  });

  test('null clears model, validityDays; PERIODIC → SINGLE drops the cron; SINGLE → PERIODIC needs one', async () => {
    const created = await createStrategy(app, {
      name: 'retype',
      type: 'PERIODIC',
      periodicExpr: '@daily',
      validityDays: 4,
      model: 'm',
    });
    const cleared = await admin<{ updateStrategy: StrategyView }>(UPDATE, {
      id: created.id,
      input: { model: null, validityDays: null, type: 'SINGLE' },
    });
    expect(cleared.data!.updateStrategy).toMatchObject({
      model: null,
      validityDays: null,
      type: 'SINGLE',
      periodicExpr: null,
    });

    const noCron = await admin(UPDATE, { id: created.id, input: { type: 'PERIODIC' } });
    expect(errorCode(noCron)).toBe('INVALID_CRON');
    expect(await storedStrategy(created.id)).toMatchObject({ type: 'single' });

    const withCron = await admin<{ updateStrategy: StrategyView }>(UPDATE, {
      id: created.id,
      input: { type: 'PERIODIC', periodicExpr: '0 30 9 * * 1-5' },
    });
    expect(withCron.data!.updateStrategy).toMatchObject({ type: 'PERIODIC', periodicExpr: '0 30 9 * * 1-5' });
  });

  test('re-validates the resulting strategy and changes nothing when refused', async () => {
    const created = await createStrategy(app, {
      name: 'revalidate',
      type: 'PERIODIC',
      periodicExpr: '@hourly',
      amount: 3,
    });
    const before = await storedStrategy(created.id);
    const cases: [Record<string, unknown>, string][] = [
      [{ periodicExpr: 'nonsense' }, 'INVALID_CRON'],
      [{ periodicExpr: null }, 'INVALID_CRON'],
      [{ condition: 'is-vip("x")' }, 'INVALID_CONDITION'],
      [{ amount: 0 }, 'BAD_USER_INPUT'],
      [{ amount: 2.001 }, 'BAD_USER_INPUT'],
      [{ name: '' }, 'BAD_USER_INPUT'],
      [{ name: null }, 'BAD_USER_INPUT'],
      [{ title: 'x'.repeat(201) }, 'BAD_USER_INPUT'],
      [{ maxExecPerUser: -2 }, 'BAD_USER_INPUT'],
      [{ validityDays: 0 }, 'BAD_USER_INPUT'],
      [{ enabled: null }, 'BAD_USER_INPUT'],
      [{ name: 'taken-for-update' }, 'CONFLICT'],
    ];
    await createStrategy(app, { name: 'taken-for-update' });
    for (const [input, code] of cases) {
      const response = await admin(UPDATE, { id: created.id, input });
      expect([JSON.stringify(input), errorCode(response)]).toEqual([JSON.stringify(input), code]);
      expect(await storedStrategy(created.id)).toEqual(before);
    }
  });

  test('renaming to its own name is fine; a missing or malformed id → NOT_FOUND', async () => {
    const created = await createStrategy(app, { name: 'self-named' });
    const same = await admin(UPDATE, { id: created.id, input: { name: 'self-named' } });
    expect(same.errors).toBeUndefined();
    for (const id of ['999999', 'abc', '-1', '1.5']) {
      expect(errorCode(await admin(UPDATE, { id, input: { title: 'x' } }))).toBe('NOT_FOUND');
    }
  });
});

describe('enable, disable, delete, read', () => {
  test('enable and disable toggle; nextRunAt only while PERIODIC and enabled; NOT_FOUND for a missing id', async () => {
    const created = await createStrategy(app, { name: 'toggle', type: 'PERIODIC', periodicExpr: '0 0 8 * * *' });
    // 2026-11-15 12:00 in Shanghai: the next 08:00 is on the 16th, 00:00 UTC.
    expect(created.nextRunAt).toBe('2026-11-16T00:00:00.000Z');
    const disabled = await admin<{ disableStrategy: StrategyView }>(
      `mutation($id: ID!) { disableStrategy(id: $id) { enabled nextRunAt } }`,
      { id: created.id },
    );
    expect(disabled.data!.disableStrategy).toEqual({ enabled: false, nextRunAt: null });
    const enabled = await admin<{ enableStrategy: StrategyView }>(
      `mutation($id: ID!) { enableStrategy(id: $id) { enabled nextRunAt } }`,
      { id: created.id },
    );
    expect(enabled.data!.enableStrategy).toEqual({ enabled: true, nextRunAt: '2026-11-16T00:00:00.000Z' });
    for (const operation of ['enableStrategy', 'disableStrategy']) {
      for (const id of ['424242', 'x']) {
        expect(errorCode(await admin(`mutation($id: ID!) { ${operation}(id: $id) { id } }`, { id }))).toBe('NOT_FOUND');
      }
    }
  });

  test('strategy(id) is null when absent or malformed', async () => {
    const created = await createStrategy(app, { name: 'readable' });
    const found = await admin<{ strategy: StrategyView | null }>('query($id: ID!) { strategy(id: $id) { id name } }', {
      id: created.id,
    });
    expect(found.data!.strategy).toEqual({ id: created.id, name: 'readable' });
    for (const id of ['987654', 'nope', '']) {
      const missing = await admin<{ strategy: StrategyView | null }>('query($id: ID!) { strategy(id: $id) { id } }', {
        id,
      });
      expect(missing.errors).toBeUndefined();
      expect(missing.data!.strategy).toBeNull();
    }
  });

  test('delete removes the strategy and its executions, keeps the audits; false when absent', async () => {
    await addUsers(app, [{ id: 'del-user' }]);
    const created = await createStrategy(app, { name: 'to-delete', condition: 'match-user("del-user")', amount: 2 });
    const run = await app.app.services.strategies.runStrategy(em(app), 'admin-1', created.id);
    await app.app.services.jobs.runner.waitFor(run.id);
    const deleted = await admin<{ deleteStrategy: boolean }>('mutation($id: ID!) { deleteStrategy(id: $id) }', {
      id: created.id,
    });
    expect(deleted.data!.deleteStrategy).toBe(true);
    const again = await admin<{ deleteStrategy: boolean }>('mutation($id: ID!) { deleteStrategy(id: $id) }', {
      id: created.id,
    });
    expect(again.data!.deleteStrategy).toBe(false);
    expect(
      (await admin<{ deleteStrategy: boolean }>('mutation { deleteStrategy(id: "zz") }')).data!.deleteStrategy,
    ).toBe(false);
    const executions = await em(app).execute('select 1 from quota_execute where strategy_id = ?', [created.id]);
    expect(executions).toHaveLength(0);
    const audits = await em(app).execute<{ strategy_name: string; amount: string }[]>(
      'select strategy_name, amount::text from quota_audit where strategy_id = ?',
      [created.id],
    );
    expect(audits).toEqual([{ strategy_name: 'to-delete', amount: '2.00' }]);
  });
});

describe('strategies (list)', () => {
  test('filters by enabled, type and name; newest first; pages', async () => {
    const prefix = 'listing';
    await createStrategy(app, { name: `${prefix}-a`, enabled: false });
    await createStrategy(app, { name: `${prefix}-b`, type: 'PERIODIC', periodicExpr: '@daily' });
    await createStrategy(app, { name: `${prefix}-C` });
    const list = async (filter: Record<string, unknown>, paging = '') => {
      const response = await admin<{
        strategies: { totalCount: number; nodes: { name: string }[]; pageInfo: Record<string, unknown> };
      }>(
        `query($filter: StrategyFilter) { strategies(filter: $filter ${paging}) { totalCount nodes { name } pageInfo { hasNextPage hasPreviousPage endCursor } } }`,
        { filter },
      );
      expect(response.errors).toBeUndefined();
      return response.data!.strategies;
    };
    expect((await list({ nameContains: 'LISTING' })).nodes.map((node) => node.name)).toEqual([
      `${prefix}-C`,
      `${prefix}-b`,
      `${prefix}-a`,
    ]);
    expect((await list({ nameContains: prefix, enabled: false })).nodes.map((node) => node.name)).toEqual([
      `${prefix}-a`,
    ]);
    expect((await list({ nameContains: prefix, type: 'PERIODIC' })).nodes.map((node) => node.name)).toEqual([
      `${prefix}-b`,
    ]);
    expect((await list({ nameContains: '%' })).totalCount).toBe(0);
    const firstPage = await list({ nameContains: prefix }, ', first: 2');
    expect(firstPage).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: true, hasPreviousPage: false } });
    // Between the pages, one shown is deleted (above the cursor's row): the next page still starts right
    // after the last one shown (by position it would skip listing-a).
    const shown = (await list({ nameContains: `${prefix}-C` })).nodes;
    expect(shown).toHaveLength(1);
    const strategyC = (
      await admin<{ strategies: { nodes: { id: string }[] } }>(
        `{ strategies(filter: { nameContains: "${prefix}-C" }) { nodes { id } } }`,
      )
    ).data!.strategies.nodes[0]!;
    expect(
      (await admin('mutation($id: ID!) { deleteStrategy(id: $id) }', { id: strategyC.id })).errors,
    ).toBeUndefined();
    const secondPage = await list({ nameContains: prefix }, `, first: 2, after: "${firstPage.pageInfo.endCursor}"`);
    expect(secondPage.nodes.map((node) => node.name)).toEqual([`${prefix}-a`]);
    expect(secondPage.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
    expect((await list({ nameContains: prefix }, ', first: 1, offset: 1')).nodes.map((node) => node.name)).toEqual([
      `${prefix}-a`,
    ]);
    for (const paging of [', first: 0', ', first: 101', ', offset: -1', ', after: "garbage!"']) {
      const response = await admin(`{ strategies(${paging.slice(2)}) { totalCount } }`);
      expect(errorCode(response)).toBe('BAD_USER_INPUT');
    }
  });
});

describe('validateCron, validateCondition, previewCondition', () => {
  test('validateCron lists the next fire times in the configured zone', async () => {
    const response = await admin<{ validateCron: string[] }>('{ validateCron(expression: "0 0 8 * * *") }');
    expect(response.data!.validateCron).toEqual([
      '2026-11-16T00:00:00.000Z',
      '2026-11-17T00:00:00.000Z',
      '2026-11-18T00:00:00.000Z',
      '2026-11-19T00:00:00.000Z',
      '2026-11-20T00:00:00.000Z',
    ]);
    const five = await admin<{ validateCron: string[] }>('{ validateCron(expression: "0 8 1 * *", count: 2) }');
    expect(five.data!.validateCron).toEqual(['2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    expect(
      (await admin<{ validateCron: string[] }>('{ validateCron(expression: "@hourly", count: 50) }')).data!
        .validateCron,
    ).toHaveLength(50);
  });

  test('validateCron refuses bad expressions (INVALID_CRON) and counts outside 1–50 (BAD_USER_INPUT)', async () => {
    for (const expression of ['', 'x', '* * *', '60 * * * * *', '@reboot', '0 0 32 * * *']) {
      const response = await admin('query($e: String!) { validateCron(expression: $e) }', { e: expression });
      expect([expression, errorCode(response)]).toEqual([expression, 'INVALID_CRON']);
    }
    for (const count of [0, 51, -1]) {
      expect(errorCode(await admin(`{ validateCron(expression: "@daily", count: ${count}) }`))).toBe('BAD_USER_INPUT');
    }
  });

  test('validateCondition answers valid with the normalized form, or the error and position; saves nothing', async () => {
    const before = await strategyCount(app);
    const valid = await admin<{ validateCondition: Record<string, unknown> }>(
      '{ validateCondition(expression: "is-vip(1)   and github-star(\\"a.b\\")") { valid error { message position } normalized } }',
    );
    expect(valid.data!.validateCondition).toMatchObject({ valid: true, error: null, normalized: expect.any(String) });
    const invalid = await admin<{
      validateCondition: { valid: boolean; error: { message: string; position: number } };
    }>('{ validateCondition(expression: "is-vip(1) and") { valid error { message position } normalized } }');
    expect(invalid.data!.validateCondition).toMatchObject({ valid: false, error: { position: 13 }, normalized: null });
    expect(await strategyCount(app)).toBe(before);
  });

  test('previewCondition counts matching users, with a sample; quota-le asks the gateway only for undecided users', async () => {
    await addUsers(app, [
      { id: 'pv-1', vip: 3 },
      { id: 'pv-2', vip: 3 },
      { id: 'pv-3', vip: 1 },
      { id: 'pv-4', vip: 0 },
    ]);
    const [total] = await em(app).execute<{ n: string }[]>('select count(*)::text as n from auth_users');
    const preview = async (expression: string, sample?: number) => {
      const response = await admin<{
        previewCondition: { matchedUsers: number; totalUsers: number; sampleUserIds: string[] };
      }>(
        'query($e: String!, $s: Int) { previewCondition(expression: $e, sample: $s) { matchedUsers totalUsers sampleUserIds } }',
        { e: expression, s: sample },
      );
      expect(response.errors).toBeUndefined();
      return response.data!.previewCondition;
    };
    expect(await preview('and(is-vip(3), match-user("pv-1", "pv-2", "pv-3"))')).toEqual({
      matchedUsers: 2,
      totalUsers: Number(total!.n),
      sampleUserIds: ['pv-1', 'pv-2'],
    });
    expect((await preview('match-user("pv-1", "pv-2", "pv-3")', 1)).sampleUserIds).toEqual(['pv-1']);

    app.simulator.setUser('pv-3', { total: 100_000, used: 99_000 }); // cents: 10 left
    app.simulator.setUser('pv-4', { total: 100_000, used: 0 }); // 1000 left
    app.simulator.clearCalls();
    const withGateway = await preview('and(match-user("pv-3", "pv-4"), quota-le("any", 50))');
    expect(withGateway).toMatchObject({ matchedUsers: 1, sampleUserIds: ['pv-3'] });
    const asked = new Set(app.simulator.calls({ route: 'getTotal' }).map((call) => call.params.user_id));
    expect([...asked].sort()).toEqual(['pv-3', 'pv-4']);

    expect(errorCode(await admin('{ previewCondition(expression: "oops(") { matchedUsers } }'))).toBe(
      'INVALID_CONDITION',
    );
    for (const sample of [-1, 101]) {
      expect(
        errorCode(await admin(`{ previewCondition(expression: "true()", sample: ${sample}) { matchedUsers } }`)),
      ).toBe('BAD_USER_INPUT');
    }
  });
});

describe('authorization', () => {
  const operations: [string, Record<string, unknown>][] = [
    ['{ strategies { totalCount } }', {}],
    ['{ strategy(id: "1") { id } }', {}],
    ['{ strategyExecutions(strategyId: "1") { totalCount } }', {}],
    ['{ validateCondition(expression: "true()") { valid } }', {}],
    ['{ previewCondition(expression: "true()") { matchedUsers } }', {}],
    ['{ validateCron(expression: "@daily") }', {}],
    [CREATE, { input: strategyInput({ name: 'by-a-user' }) }],
    [UPDATE, { id: '1', input: { title: 'x' } }],
    ['mutation { deleteStrategy(id: "1") }', {}],
    ['mutation { enableStrategy(id: "1") { id } }', {}],
    ['mutation { disableStrategy(id: "1") { id } }', {}],
    ['mutation { runStrategy(id: "1") { id } }', {}],
  ];
  test.each(operations)('a user gets FORBIDDEN and nobody UNAUTHENTICATED: %s', async (query, variables) => {
    const before = await strategyCount(app);
    expect(errorCode(await app.gql(query, variables, { token: app.userToken }))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql(query, variables))).toBe('UNAUTHENTICATED');
    expect(await strategyCount(app)).toBe(before);
  });
});
