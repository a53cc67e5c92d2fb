import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PROBE_USER_ID } from '../../src/modules/gateway/gateway.client.js';
import { errorCode, type GraphqlResponse, startTestApp, type TestApp } from '../support/app.js';

/**
 * The admin tooling over the gateway (contract: gatewayQuota, gatewayEmployee, setGatewayQuota,
 * adjustGatewayQuota, setGatewayStarredProjects), end to end through GraphQL and the simulator.
 */

let app: TestApp;

const QUOTA_FIELDS = 'userId totalQuota usedQuota';
const EMPLOYEE_FIELDS = 'employeeNumber starredProjects starCheck quotaCheck models';
const GATEWAY_QUOTA = `query Q($userId: String!) { gatewayQuota(userId: $userId) { ${QUOTA_FIELDS} } }`;
const GATEWAY_EMPLOYEE = `query E($employeeNumber: String!) { gatewayEmployee(employeeNumber: $employeeNumber) { ${EMPLOYEE_FIELDS} } }`;
const SET_QUOTA = `mutation S($userId: String!, $counter: GatewayCounter!, $value: Float!) {
  setGatewayQuota(userId: $userId, counter: $counter, value: $value) { ${QUOTA_FIELDS} } }`;
const ADJUST_QUOTA = `mutation A($userId: String!, $counter: GatewayCounter!, $delta: Float!) {
  adjustGatewayQuota(userId: $userId, counter: $counter, delta: $delta) { ${QUOTA_FIELDS} } }`;
const SET_STARS = `mutation P($employeeNumber: String!, $projects: [String!]!) {
  setGatewayStarredProjects(employeeNumber: $employeeNumber, projects: $projects) { ${EMPLOYEE_FIELDS} } }`;

const asAdmin = <T = Record<string, unknown>>(query: string, variables: Record<string, unknown>) =>
  app.gql<T>(query, variables, { token: app.adminToken });

/** Writes the gateway received (reads and the health probe do not count). */
const gatewayWrites = () => app.simulator.calls({ method: 'POST' }).length;

function expectOk(response: GraphqlResponse): void {
  expect(response.errors).toBeUndefined();
  expect(response.status).toBe(200);
}

/** A refused input: BAD_USER_INPUT naming what is wrong, and nothing written to the gateway. */
async function expectBadInput(query: string, variables: Record<string, unknown>, message?: RegExp): Promise<void> {
  const writesBefore = gatewayWrites();
  const snapshotBefore = app.simulator.snapshot();
  const response = await asAdmin(query, variables);
  expect(errorCode(response)).toBe('BAD_USER_INPUT');
  expect(response.data).toBeNull();
  if (message) expect(response.errors?.[0]?.message).toMatch(message);
  expect(gatewayWrites()).toBe(writesBefore);
  expect(app.simulator.snapshot()).toEqual(snapshotBefore);
}

beforeAll(async () => {
  app = await startTestApp({ label: 'platform-gateway-admin' });
});

afterAll(async () => {
  await app?.stop();
});

beforeEach(() => {
  app.simulator.reset();
});

describe('reads', () => {
  it('gatewayQuota answers the gateway counters as amounts', async () => {
    app.simulator.setUser('alice', { total: 12_345, used: 2_050 });
    const response = await asAdmin(GATEWAY_QUOTA, { userId: 'alice' });
    expectOk(response);
    expect(response.data).toEqual({ gatewayQuota: { userId: 'alice', totalQuota: 123.45, usedQuota: 20.5 } });
  });

  it('gatewayQuota of a user the gateway does not know answers zeros; the id is trimmed', async () => {
    const response = await asAdmin(GATEWAY_QUOTA, { userId: '  nobody  ' });
    expect(response.data).toEqual({ gatewayQuota: { userId: 'nobody', totalQuota: 0, usedQuota: 0 } });
    expect(app.simulator.calls({ route: 'getTotal' }).at(-1)?.params.user_id).toBe('nobody');
  });

  it('gatewayEmployee answers starred projects, switches and models', async () => {
    app.simulator.setEmployee('E001', {
      starredProjects: 'zgsm-ai.zgsm,openai.gpt-4',
      models: ['gpt-4o', 'deepseek-v3'],
      starCheck: true,
      quotaCheck: false,
    });
    const response = await asAdmin(GATEWAY_EMPLOYEE, { employeeNumber: 'E001' });
    expectOk(response);
    expect(response.data).toEqual({
      gatewayEmployee: {
        employeeNumber: 'E001',
        starredProjects: ['zgsm-ai.zgsm', 'openai.gpt-4'],
        starCheck: true,
        quotaCheck: false,
        models: ['gpt-4o', 'deepseek-v3'],
      },
    });
    const unknown = await asAdmin(GATEWAY_EMPLOYEE, { employeeNumber: 'E404' });
    expect(unknown.data).toEqual({
      gatewayEmployee: { employeeNumber: 'E404', starredProjects: [], starCheck: false, quotaCheck: false, models: [] },
    });
  });
});

describe('writes', () => {
  it('setGatewayQuota TOTAL writes the total absolutely, in plain decimals', async () => {
    app.simulator.setUser('bob', { total: 999, used: 100 });
    const response = await asAdmin(SET_QUOTA, { userId: 'bob', counter: 'TOTAL', value: 100.5 });
    expectOk(response);
    expect(response.data).toEqual({ setGatewayQuota: { userId: 'bob', totalQuota: 100.5, usedQuota: 1 } });
    expect(app.simulator.getUser('bob')).toEqual({ total: 10_050, used: 100 });
    const [write] = app.simulator.calls({ route: 'setTotal' });
    expect(write.params).toEqual({ user_id: 'bob', quota: '100.5' });
  });

  it('setGatewayQuota USED writes the used counter; 0 is allowed', async () => {
    app.simulator.setUser('bob', { total: 5_000, used: 4_000 });
    const response = await asAdmin(SET_QUOTA, { userId: 'bob', counter: 'USED', value: 0 });
    expect(response.data).toEqual({ setGatewayQuota: { userId: 'bob', totalQuota: 50, usedQuota: 0 } });
    expect(app.simulator.getUser('bob')).toEqual({ total: 5_000, used: 0 });
    expect(app.simulator.calls({ route: 'setUsed' })).toHaveLength(1);
  });

  it('adjustGatewayQuota adds a positive or negative delta to either counter', async () => {
    app.simulator.setUser('carol', { total: 10_000, used: 3_000 });
    const up = await asAdmin(ADJUST_QUOTA, { userId: 'carol', counter: 'TOTAL', delta: 25.25 });
    expect(up.data).toEqual({ adjustGatewayQuota: { userId: 'carol', totalQuota: 125.25, usedQuota: 30 } });
    const down = await asAdmin(ADJUST_QUOTA, { userId: 'carol', counter: 'USED', delta: -10 });
    expect(down.data).toEqual({ adjustGatewayQuota: { userId: 'carol', totalQuota: 125.25, usedQuota: 20 } });
    expect(app.simulator.calls({ route: 'addTotal' })[0].params).toEqual({ user_id: 'carol', value: '25.25' });
    expect(app.simulator.calls({ route: 'addUsed' })[0].params).toEqual({ user_id: 'carol', value: '-10' });
  });

  it('adjustGatewayQuota whose read-back fails says the delta was applied, so nobody sends it again', async () => {
    app.simulator.setUser('dave', { total: 10_000, used: 0 });
    app.simulator.setFault('getTotal', { kind: 'status', status: 400, times: 1 });
    try {
      const response = await asAdmin(ADJUST_QUOTA, { userId: 'dave', counter: 'TOTAL', delta: 5 });
      expect(response.errors?.[0]?.extensions).toMatchObject({ code: 'GATEWAY_UNAVAILABLE', deltaApplied: true });
      expect(response.errors?.[0]?.message).toMatch(/^The delta of 5 to TOTAL was applied, .*do not send it again/);
    } finally {
      app.simulator.clearFaults();
    }
    expect(app.simulator.getUser('dave').total).toBe(10_500);
  });

  it('setGatewayStarredProjects writes the trimmed list as CSV; [] clears it', async () => {
    const response = await asAdmin(SET_STARS, { employeeNumber: 'E002', projects: [' zgsm-ai.zgsm ', 'openai.gpt-4'] });
    expectOk(response);
    expect(response.data).toMatchObject({
      setGatewayStarredProjects: { employeeNumber: 'E002', starredProjects: ['zgsm-ai.zgsm', 'openai.gpt-4'] },
    });
    expect(app.simulator.getEmployee('E002').starredProjects).toBe('zgsm-ai.zgsm,openai.gpt-4');

    const cleared = await asAdmin(SET_STARS, { employeeNumber: 'E002', projects: [] });
    expect(cleared.data).toMatchObject({ setGatewayStarredProjects: { starredProjects: [] } });
    expect(app.simulator.getEmployee('E002').starredProjects).toBe('');
  });
});

describe('bad inputs change nothing', () => {
  it.each([
    ['an empty user id', GATEWAY_QUOTA, { userId: '' }, /userId must not be empty/],
    ['a blank user id', SET_QUOTA, { userId: '   ', counter: 'TOTAL', value: 1 }, /userId must not be empty/],
    ['an empty user id', ADJUST_QUOTA, { userId: '', counter: 'USED', delta: 1 }, /userId must not be empty/],
    ['an over-long user id', SET_QUOTA, { userId: 'u'.repeat(201), counter: 'TOTAL', value: 1 }, /longer than 200/],
    ['an empty employee number', GATEWAY_EMPLOYEE, { employeeNumber: '' }, /employeeNumber must not be empty/],
    [
      'an empty employee number',
      SET_STARS,
      { employeeNumber: ' ', projects: ['a'] },
      /employeeNumber must not be empty/,
    ],
    ['3 decimals', SET_QUOTA, { userId: 'dave', counter: 'TOTAL', value: 1.234 }, /at most 2 decimal places/],
    ['3 decimals', ADJUST_QUOTA, { userId: 'dave', counter: 'TOTAL', delta: 0.001 }, /at most 2 decimal places/],
    ['a negative set value', SET_QUOTA, { userId: 'dave', counter: 'USED', value: -1 }, /must not be negative/],
    ['a zero delta', ADJUST_QUOTA, { userId: 'dave', counter: 'TOTAL', delta: 0 }, /delta must not be 0/],
    ['a value beyond numeric(14,2)', SET_QUOTA, { userId: 'dave', counter: 'TOTAL', value: 1e15 }, /too large/],
    ['a comma in a project', SET_STARS, { employeeNumber: 'E003', projects: ['a,b'] }, /without commas/],
    ['an empty project', SET_STARS, { employeeNumber: 'E003', projects: ['ok', '  '] }, /1-200 characters/],
    ['an over-long project', SET_STARS, { employeeNumber: 'E003', projects: ['p'.repeat(201)] }, /1-200 characters/],
    [
      '101 projects',
      SET_STARS,
      { employeeNumber: 'E003', projects: Array.from({ length: 101 }, (_, i) => `p${i}`) },
      /at most 100/,
    ],
    ['an unknown counter', SET_QUOTA, { userId: 'dave', counter: 'BOTH', value: 1 }, /\$counter/],
    ['a value that is a string', SET_QUOTA, { userId: 'dave', counter: 'TOTAL', value: '10' }, /\$value/],
    ['a null project', SET_STARS, { employeeNumber: 'E003', projects: ['a', null] }, /\$projects/],
  ])('refuses %s', async (_what, query, variables, message) => {
    app.simulator.setUser('dave', { total: 700, used: 100 });
    await expectBadInput(query, variables, message);
  });

  it('refuses every operation to a non-admin, before the gateway is asked', async () => {
    const variablesOf: [string, Record<string, unknown>][] = [
      [GATEWAY_QUOTA, { userId: 'erin' }],
      [GATEWAY_EMPLOYEE, { employeeNumber: 'E9' }],
      [SET_QUOTA, { userId: 'erin', counter: 'TOTAL', value: 1 }],
      [ADJUST_QUOTA, { userId: 'erin', counter: 'TOTAL', delta: 1 }],
      [SET_STARS, { employeeNumber: 'E9', projects: ['x'] }],
    ];
    for (const [query, variables] of variablesOf) {
      expect(errorCode(await app.gql(query, variables, { token: app.userToken }))).toBe('FORBIDDEN');
      expect(errorCode(await app.gql(query, variables))).toBe('UNAUTHENTICATED');
    }
    // Only the background health probe may have reached the gateway.
    expect(app.simulator.calls().filter((call) => call.params.user_id !== PROBE_USER_ID)).toEqual([]);
  });
});

describe('gateway failures', () => {
  it('a failing read answers GATEWAY_UNAVAILABLE without internals', async () => {
    app.simulator.setFault('getTotal', { kind: 'status', status: 500 });
    const response = await asAdmin(GATEWAY_QUOTA, { userId: 'frank' });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    expect(response.data).toBeNull();
    const text = JSON.stringify(response.errors);
    expect(text).not.toContain(app.simulator.url);
    expect(text).not.toMatch(/stack|node_modules|\.ts\b/);
  });

  it('a failing absolute write answers GATEWAY_UNAVAILABLE after its retries', async () => {
    app.simulator.setFault('setTotal', { kind: 'status', status: 503 });
    const response = await asAdmin(SET_QUOTA, { userId: 'frank', counter: 'TOTAL', value: 10 });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    expect(app.simulator.calls({ route: 'setTotal' })).toHaveLength(4);
    expect(app.simulator.getUser('frank').total).toBe(0);
  });

  it('a delta whose answer is lost is applied once and not retried', async () => {
    app.simulator.setUser('gina', { total: 1_000, used: 0 });
    app.simulator.setFault('addTotal', { kind: 'applied-then-drop', times: 1 });
    const response = await asAdmin(ADJUST_QUOTA, { userId: 'gina', counter: 'TOTAL', delta: 5 });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    expect(app.simulator.calls({ route: 'addTotal' })).toHaveLength(1);
    expect(app.simulator.getUser('gina').total).toBe(1_500);
  });

  it('a gateway that answers success: false is unavailable too', async () => {
    app.simulator.setFault('setStarredProjects', { kind: 'success-false', message: 'store is read-only' });
    const response = await asAdmin(SET_STARS, { employeeNumber: 'E004', projects: ['a.b'] });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    expect(app.simulator.getEmployee('E004').starredProjects).toBe('');
  });

  it('a write that succeeded but whose read-back fails still reports GATEWAY_UNAVAILABLE', async () => {
    app.simulator.setFault('getUsed', { kind: 'status', status: 502 });
    const response = await asAdmin(SET_QUOTA, { userId: 'hank', counter: 'TOTAL', value: 3 });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    // The absolute write itself went through; repeating it is harmless.
    expect(app.simulator.getUser('hank').total).toBe(300);
  });
});
