import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import {
  GatewayClient,
  type GatewayClientConfig,
  type GatewayClientOptions,
} from '../../src/modules/gateway/gateway.client.js';
import { GatewayError } from '../../src/modules/gateway/gateway.errors.js';
import { readEnabled, readModels, readQuota, readStarredProjects } from '../../src/modules/gateway/gateway.reply.js';
import {
  backoffDelayMs,
  classifyStatus,
  classifyTransportFailure,
  MAX_BACKOFF_MS,
  shouldRetry,
} from '../../src/modules/gateway/gateway.retry.js';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';

const ADMIN_KEY = 'sim-admin-key-7f3a9c';
const ADMIN = '/v1/chat/completions/quota';
const TIMEOUT_MS = 300;
const RETRIES = 3;

let simulator: GatewaySimulator;
let baseUrl: string;

function clientConfig(overrides: Partial<GatewayClientConfig> = {}): GatewayClientConfig {
  return {
    baseUrl,
    adminPath: ADMIN,
    authHeader: 'x-admin-key',
    authValue: ADMIN_KEY,
    timeoutMs: TIMEOUT_MS,
    retries: RETRIES,
    retryBaseDelayMs: 5,
    ...overrides,
  };
}

function makeClient(overrides: Partial<GatewayClientConfig> = {}, options: GatewayClientOptions = {}): GatewayClient {
  return new GatewayClient(clientConfig(overrides), silentLogger(), options);
}

/** The GatewayError a call ends with (fails the test when the call succeeds). */
async function failureOf(call: Promise<unknown>): Promise<GatewayError> {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(GatewayError);
  return error as GatewayError;
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

beforeAll(async () => {
  simulator = new GatewaySimulator({ authValue: ADMIN_KEY });
  baseUrl = await simulator.start();
});

afterAll(async () => {
  await simulator.stop();
});

beforeEach(() => {
  simulator.reset();
});

describe('GatewayClient operations round-trip through the simulator', () => {
  it('sets, reads and adds to the total with plain decimals', async () => {
    const client = makeClient();
    await client.setTotal('u1', 1250);
    expect(simulator.getUser('u1').total).toBe(1250);
    await client.addTotal('u1', -3000);
    await client.addTotal('u1', 10_000);
    expect(await client.getTotal('u1')).toBe(8250);

    const [set, subtract, add, read] = simulator.calls();
    expect(set).toMatchObject({ method: 'POST', path: `${ADMIN}/refresh`, route: 'setTotal' });
    expect(set.params).toEqual({ user_id: 'u1', quota: '12.5' });
    expect(subtract).toMatchObject({ method: 'POST', path: `${ADMIN}/delta`, params: { user_id: 'u1', value: '-30' } });
    expect(add.params.value).toBe('100');
    expect(read).toMatchObject({ method: 'GET', path: ADMIN, params: { user_id: 'u1' }, route: 'getTotal' });
  });

  it('sets, reads and adds to the used quota', async () => {
    const client = makeClient();
    await client.setUsed('u2', 10_000);
    await client.addUsed('u2', 1);
    await client.addUsed('u2', -250);
    expect(await client.getUsed('u2')).toBe(9751);
    expect(simulator.getUser('u2')).toEqual({ total: 0, used: 9751 });

    const calls = simulator.calls();
    expect(calls.map((call) => call.path)).toEqual([
      `${ADMIN}/used/refresh`,
      `${ADMIN}/used/delta`,
      `${ADMIN}/used/delta`,
      `${ADMIN}/used`,
    ]);
    expect(calls.map((call) => call.params.quota ?? call.params.value)).toEqual(['100', '0.01', '-2.5', undefined]);
  });

  it('reads an unknown user as 0', async () => {
    const client = makeClient();
    expect(await client.getTotal('nobody')).toBe(0);
    expect(await client.getUsed('nobody')).toBe(0);
  });

  it('escapes user ids in query strings and form bodies', async () => {
    const client = makeClient();
    const awkward = 'a&b=c d/é?#%+';
    await client.setTotal(awkward, 700);
    await client.addUsed(awkward, 50);
    expect(await client.getTotal(awkward)).toBe(700);
    expect(await client.getUsed(awkward)).toBe(50);
    expect(simulator.getUser(awkward)).toEqual({ total: 700, used: 50 });
    for (const call of simulator.calls()) expect(call.params.user_id).toBe(awkward);
  });

  it('sends starred projects as CSV and reads them back trimmed', async () => {
    const client = makeClient();
    await client.setStarredProjects('E001', ['org/repo-a', 'org/repo-b']);
    const [set] = simulator.calls();
    expect(set).toMatchObject({ method: 'POST', path: `${ADMIN}/star/projects/set`, route: 'setStarredProjects' });
    expect(set.params).toEqual({ employee_number: 'E001', starred_projects: 'org/repo-a,org/repo-b' });
    expect(await client.getStarredProjects('E001')).toEqual(['org/repo-a', 'org/repo-b']);
    expect(simulator.calls()[1]).toMatchObject({
      method: 'GET',
      path: `${ADMIN}/star/projects/query`,
      params: { employee_number: 'E001' },
    });

    simulator.setEmployee('E002', { starredProjects: ' x/one , ,y/two ,' });
    expect(await client.getStarredProjects('E002')).toEqual(['x/one', 'y/two']);
    expect(await client.getStarredProjects('unknown')).toEqual([]);

    await client.setStarredProjects('E001', []);
    expect(simulator.getEmployee('E001').starredProjects).toBe('');
    expect(await client.getStarredProjects('E001')).toEqual([]);
  });

  it('refuses a starred project name containing a comma without calling the gateway', async () => {
    const client = makeClient();
    await expect(client.setStarredProjects('E001', ['a,b'])).rejects.toMatchObject({ code: ErrorCode.BAD_USER_INPUT });
    expect(simulator.calls()).toHaveLength(0);
  });

  it('sends models as JSON array text at the gateway root and reads them back', async () => {
    const client = makeClient();
    await client.setModels('E001', ['gpt-4o', 'deepseek-r1']);
    const [set] = simulator.calls();
    expect(set).toMatchObject({ method: 'POST', path: '/model-permission/set', route: 'setModels' });
    expect(set.params).toEqual({ employee_number: 'E001', models: '["gpt-4o","deepseek-r1"]' });
    expect(simulator.getEmployee('E001').models).toEqual(['gpt-4o', 'deepseek-r1']);

    expect(await client.getModels('E001')).toEqual(['gpt-4o', 'deepseek-r1']);
    expect(simulator.calls()[1]).toMatchObject({
      method: 'GET',
      path: '/model-permission',
      params: { employee_number: 'E001' },
    });
    expect(await client.getModels('unknown')).toEqual([]);

    await client.setModels('E001', []);
    expect(simulator.calls().at(-1)?.params.models).toBe('[]');
    expect(await client.getModels('E001')).toEqual([]);
  });

  it('sets and reads the star-check and quota-check switches as true/false', async () => {
    const client = makeClient();
    expect(await client.getStarCheck('E001')).toBe(false);
    expect(await client.getQuotaCheck('E001')).toBe(false);

    await client.setStarCheck('E001', true);
    await client.setQuotaCheck('E001', true);
    expect(await client.getStarCheck('E001')).toBe(true);
    expect(await client.getQuotaCheck('E001')).toBe(true);
    await client.setStarCheck('E001', false);
    expect(await client.getStarCheck('E001')).toBe(false);
    expect(simulator.getEmployee('E001')).toMatchObject({ starCheck: false, quotaCheck: true });

    const writes = simulator.calls({ method: 'POST' });
    expect(writes.map((call) => [call.path, call.params.enabled])).toEqual([
      ['/check-star/set', 'true'],
      ['/check-quota/set', 'true'],
      ['/check-star/set', 'false'],
    ]);
    const reads = simulator.calls({ method: 'GET' });
    expect(new Set(reads.map((call) => call.path))).toEqual(new Set(['/check-star', '/check-quota']));
    for (const call of simulator.calls()) expect(call.params.employee_number).toBe('E001');
  });

  it('sends the admin key on every call', async () => {
    const client = makeClient();
    await client.setTotal('u1', 1);
    await client.getUsed('u1');
    await client.setModels('E1', ['m']);
    await client.getQuotaCheck('E1');
    const calls = simulator.calls();
    expect(calls).toHaveLength(4);
    expect(calls.every((call) => call.authorized && call.outcome === 'ok')).toBe(true);
  });

  it('keeps a path prefix of the base URL and honours a custom admin path', async () => {
    const prefixed = new GatewaySimulator({ authValue: ADMIN_KEY, basePath: '/gw', adminPath: '/admin/quota' });
    const prefixedUrl = await prefixed.start();
    try {
      expect(prefixedUrl.endsWith('/gw')).toBe(true);
      const client = makeClient({ baseUrl: `${prefixedUrl}/`, adminPath: '/admin/quota' });
      await client.setTotal('u1', 500);
      expect(await client.getTotal('u1')).toBe(500);
      await client.setStarCheck('E1', true);
      expect(prefixed.calls().map((call) => call.path)).toEqual([
        '/gw/admin/quota/refresh',
        '/gw/admin/quota',
        '/gw/check-star/set',
      ]);
      client.close();
    } finally {
      await prefixed.stop();
    }
  });
});

describe('GatewayClient failures and retries', () => {
  it('does not retry a wrong admin key (4xx) and does not repeat the key', async () => {
    const client = makeClient({ authValue: 'wrong-key-value' });
    const error = await failureOf(client.setTotal('u1', 100));
    expect(error).toBeInstanceOf(DomainError);
    expect(error.code).toBe(ErrorCode.GATEWAY_UNAVAILABLE);
    expect(error.attempts).toBe(1);
    expect(error.status).toBe(401);
    expect(error.ambiguous).toBe(false);
    expect(error.message).toMatch(/^AI gateway setTotal failed: HTTP 401/);
    expect(error.message).not.toContain('wrong-key-value');
    expect(simulator.calls()).toHaveLength(1);
    expect(simulator.calls()[0]).toMatchObject({ outcome: 'unauthorized', authorized: false });
  });

  it('does not retry any other 4xx', async () => {
    simulator.setFault('getTotal', { kind: 'status', status: 400 });
    const error = await failureOf(makeClient().getTotal('u1'));
    expect(error.attempts).toBe(1);
    expect(error.status).toBe(400);
    expect(simulator.calls()).toHaveLength(1);
  });

  it.each([500, 503, 429])('retries HTTP %i and succeeds when the fault clears', async (status) => {
    simulator.setUser('u1', { total: 4200 });
    simulator.setFault('getTotal', { kind: 'status', status, times: 2 });
    expect(await makeClient().getTotal('u1')).toBe(4200);
    expect(simulator.calls().map((call) => call.status)).toEqual([status, status, 200]);
  });

  it('retries a delta refused with 429: a rate limit is answered before anything is applied', async () => {
    simulator.setFault('addUsed', { kind: 'status', status: 429, times: 3 });
    await makeClient().addUsed('u1', 30);
    expect(simulator.getUser('u1')).toEqual({ total: 0, used: 30 });
    expect(simulator.calls({ route: 'addUsed' })).toHaveLength(4);
  });

  it.each([500, 503])('does not retry a delta answered %i: it may have been applied (it is, once)', async (status) => {
    // The monthly reset of used: applied, then the gateway failed. A retry would reset it twice.
    simulator.setUser('u1', { used: 300 });
    simulator.setFault('addUsed', { kind: 'applied-then-status', status, times: 1 });
    const error = await failureOf(makeClient().addUsed('u1', -300));
    expect(error).toMatchObject({ attempts: 1, ambiguous: true, status });
    expect(simulator.getUser('u1').used).toBe(0);
    expect(simulator.calls({ route: 'addUsed' })).toHaveLength(1);
  });

  it('gives up on a persistent 500 after exactly retries + 1 attempts', async () => {
    simulator.setFault('setTotal', { kind: 'status', status: 500 });
    const error = await failureOf(makeClient().setTotal('u1', 100));
    expect(error.code).toBe(ErrorCode.GATEWAY_UNAVAILABLE);
    expect(error.attempts).toBe(RETRIES + 1);
    expect(error.status).toBe(500);
    // A write answered 5xx may have been applied: whoever rolls back must restore the total.
    expect(error.ambiguous).toBe(true);
    expect(error.message).toBe(
      `AI gateway setTotal failed: HTTP 500: "simulated fault" (after ${RETRIES + 1} attempts)`,
    );
    expect(simulator.calls()).toHaveLength(RETRIES + 1);
    expect(simulator.getUser('u1').total).toBe(0);
  });

  it('makes a single attempt when retries is 0', async () => {
    simulator.setFault('*', { kind: 'status', status: 503 });
    const error = await failureOf(makeClient({ retries: 0 }).getModels('E1'));
    expect(error.attempts).toBe(1);
    expect(error.message).toBe('AI gateway getModels failed: HTTP 503: "simulated fault"');
  });

  it('times out a slow read on every attempt', async () => {
    simulator.setFault('getTotal', { kind: 'slow', delayMs: TIMEOUT_MS + 300 });
    const error = await failureOf(makeClient().getTotal('u1'));
    expect(error.attempts).toBe(RETRIES + 1);
    expect(error.ambiguous).toBe(false);
    expect(error.message).toContain(`no answer within ${TIMEOUT_MS} ms`);
  });

  it('retries an absolute write after a timeout; the late first attempt is harmless', async () => {
    simulator.setFault('setTotal', { kind: 'slow', delayMs: TIMEOUT_MS + 200, times: 1 });
    await makeClient().setTotal('u1', 900);
    expect(simulator.getUser('u1').total).toBe(900);
    // The first attempt is answered (to nobody) after its delay, writing the same value again.
    await vi.waitFor(() => expect(simulator.calls({ route: 'setTotal' })[0].status).toBe(200), { timeout: 5_000 });
    expect(simulator.getUser('u1').total).toBe(900);
    expect(simulator.calls({ route: 'setTotal' })).toHaveLength(2);
  });

  it('retries every absolute write on timeouts until the attempts run out, and flags the doubt', async () => {
    simulator.setFault('setModels', { kind: 'slow', delayMs: TIMEOUT_MS + 200 });
    const error = await failureOf(makeClient({ retries: 1 }).setModels('E1', ['m']));
    expect(error.attempts).toBe(2);
    expect(error.ambiguous).toBe(true);
    // Both attempts are still sleeping in the simulator: let them land here, not in a later test.
    await vi.waitFor(
      () => expect(simulator.calls({ route: 'setModels' }).map((call) => call.outcome)).toEqual(['ok', 'ok']),
      { timeout: 5_000 },
    );
  });

  it.each(['addTotal', 'addUsed'] as const)(
    'does not retry %s after a timeout (it may have been applied)',
    async (operation) => {
      simulator.setFault(operation, { kind: 'slow', delayMs: TIMEOUT_MS + 100 });
      const error = await failureOf(makeClient()[operation]('u1', 500));
      expect(error.attempts).toBe(1);
      expect(error.ambiguous).toBe(true);
      expect(error.message).toBe(`AI gateway ${operation} failed: no answer within ${TIMEOUT_MS} ms`);
      expect(simulator.calls({ route: operation })).toHaveLength(1);
      // The gateway finishes the call after the client gave up: applied exactly once.
      await vi.waitFor(() => expect(simulator.calls({ route: operation })[0].outcome).toBe('ok'), { timeout: 5_000 });
      const user = simulator.getUser('u1');
      expect(operation === 'addTotal' ? user.total : user.used).toBe(500);
    },
  );

  it('retries a read after a dropped connection', async () => {
    simulator.setUser('u1', { used: 77 });
    simulator.setFault('getUsed', { kind: 'drop', times: 1 });
    expect(await makeClient().getUsed('u1')).toBe(77);
    expect(simulator.calls().map((call) => call.status)).toEqual([null, 200]);
  });

  it('reports a persistently dropped connection as a connection error', async () => {
    simulator.setFault('setModels', { kind: 'drop' });
    const error = await failureOf(makeClient().setModels('E1', ['m']));
    expect(error.attempts).toBe(RETRIES + 1);
    expect(error.message).toContain('connection closed before an answer');
    expect(error.status).toBeUndefined();
  });

  it('does not retry a delta whose connection dropped after sending', async () => {
    simulator.setFault('addTotal', { kind: 'drop' });
    const error = await failureOf(makeClient().addTotal('u1', 100));
    expect(error.attempts).toBe(1);
    expect(error.ambiguous).toBe(true);
    expect(simulator.getUser('u1').total).toBe(0);
  });

  it('retries setTotal whose answer was lost after it was applied; the final state is right', async () => {
    simulator.setFault('setTotal', { kind: 'applied-then-drop', times: 1 });
    await makeClient().setTotal('u1', 1234);
    expect(simulator.getUser('u1').total).toBe(1234);
    const calls = simulator.calls({ route: 'setTotal' });
    expect(calls.map((call) => [call.applied, call.status])).toEqual([
      [true, null],
      [true, 200],
    ]);
  });

  it('does not retry addUsed whose answer was lost after it was applied: applied once, flagged ambiguous', async () => {
    simulator.setUser('u1', { used: 1000 });
    simulator.setFault('addUsed', { kind: 'applied-then-drop', times: 1 });
    const error = await failureOf(makeClient().addUsed('u1', -1000));
    expect(error.attempts).toBe(1);
    expect(error.ambiguous).toBe(true);
    expect(simulator.getUser('u1').used).toBe(0);
    expect(simulator.calls({ route: 'addUsed' })).toHaveLength(1);
  });

  it('retries an absolute write answered 503 after it was applied', async () => {
    simulator.setFault('setUsed', { kind: 'applied-then-status', status: 503, times: 1 });
    await makeClient().setUsed('u1', 300);
    expect(simulator.getUser('u1').used).toBe(300);
    expect(simulator.calls()).toHaveLength(2);
  });

  it('treats a 504 from a proxy as ambiguous for a delta and does not retry it', async () => {
    simulator.setFault('addUsed', { kind: 'applied-then-status', status: 504, times: 1 });
    const error = await failureOf(makeClient().addUsed('u1', 300));
    expect(error.attempts).toBe(1);
    expect(error.ambiguous).toBe(true);
    expect(error.status).toBe(504);
    expect(simulator.getUser('u1').used).toBe(300);
  });

  it('retries a refused connection, deltas included, since nothing was sent', async () => {
    const client = makeClient({ baseUrl: `http://127.0.0.1:${await closedPort()}` });
    const calls = [() => client.addTotal('u1', 100), () => client.addUsed('u1', 100), () => client.getTotal('u1')];
    for (const call of calls) {
      const error = await failureOf(call());
      expect(error.code).toBe(ErrorCode.GATEWAY_UNAVAILABLE);
      expect(error.attempts).toBe(RETRIES + 1);
      expect(error.ambiguous).toBe(false);
      expect(error.message).toMatch(/failed: connection refused \(after 4 attempts\)$/);
    }
  });

  it('treats a success: false envelope as an error without retrying', async () => {
    simulator.setFault('getStarCheck', { kind: 'success-false', message: 'employee locked' });
    const error = await failureOf(makeClient().getStarCheck('E1'));
    expect(error.attempts).toBe(1);
    expect(error.message).toBe('AI gateway getStarCheck failed: gateway refused (code 500): "employee locked"');
  });

  it('shortens a long gateway message', async () => {
    simulator.setFault('getStarCheck', { kind: 'success-false', message: `${'x'.repeat(500)}\nsecond line` });
    const error = await failureOf(makeClient().getStarCheck('E1'));
    expect(error.message.length).toBeLessThan(300);
    expect(error.message).not.toContain('\n');
  });

  it('treats a reply that is not JSON as an error without retrying', async () => {
    simulator.setFault('getQuotaCheck', { kind: 'non-json' });
    const error = await failureOf(makeClient().getQuotaCheck('E1'));
    expect(error.attempts).toBe(1);
    expect(error.status).toBe(200);
    expect(error.message).toContain('unreadable reply');
  });

  it('never puts the admin key into error messages, causes or logs', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const client = new GatewayClient(clientConfig(), logger);
    simulator.setFault('getTotal', { kind: 'success-false', message: `bad key ${ADMIN_KEY}` });
    simulator.setFault('setTotal', { kind: 'status', status: 500 });
    simulator.setFault('addTotal', { kind: 'slow', delayMs: TIMEOUT_MS + 100 });
    const errors = [
      await failureOf(client.getTotal('u1')),
      await failureOf(client.setTotal('u1', 1)),
      await failureOf(client.addTotal('u1', 1)),
      await failureOf(
        new GatewayClient(clientConfig({ baseUrl: `http://127.0.0.1:${await closedPort()}` }), logger).getUsed('u1'),
      ),
    ];
    // The timed-out addTotal is still sleeping in the simulator: let it land here, not in a later test.
    await vi.waitFor(() => expect(simulator.calls({ route: 'addTotal' })[0].outcome).toBe('ok'), { timeout: 5_000 });
    expect(errors[0].message).toContain('bad key [redacted]');
    for (const error of errors) {
      const seen = [
        error.message,
        String(error.cause),
        JSON.stringify(error),
        JSON.stringify(error.cause),
        error.stack,
      ];
      for (const text of seen) expect(text).not.toContain(ADMIN_KEY);
    }
    expect(lines.length).toBeGreaterThanOrEqual(1 + 4 + 1 + 4);
    for (const line of lines) expect(line).not.toContain(ADMIN_KEY);
    const warned = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(warned.filter((entry) => entry.operation === 'setTotal').map((entry) => entry.attempt)).toEqual([
      1, 2, 3, 4,
    ]);
    expect(warned.find((entry) => entry.operation === 'setTotal')).toMatchObject({ level: 40, status: 500 });
    expect(warned.find((entry) => entry.operation === 'getUsed')).toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('GatewayClient health and metrics hooks', () => {
  it('probes with one cheap call, never throws, and remembers whether the gateway last answered', async () => {
    const client = makeClient();
    expect(client.lastProbeOk).toBe(false);
    expect(await client.probe()).toBe(true);
    expect(client.lastProbeOk).toBe(true);
    expect(simulator.calls()).toEqual([
      expect.objectContaining({ route: 'getTotal', params: { user_id: '__health_probe__' } }),
    ]);

    simulator.setFault('*', { kind: 'status', status: 503 });
    expect(await client.probe()).toBe(false);
    expect(client.lastProbeOk).toBe(false);
    expect(simulator.calls()).toHaveLength(2);

    simulator.clearFaults();
    await client.setTotal('u1', 1);
    expect(client.lastProbeOk).toBe(true);
    simulator.setFault('getModels', { kind: 'status', status: 500 });
    await failureOf(client.getModels('E1'));
    expect(client.lastProbeOk).toBe(false);
    // A refusal the gateway sent says it is there: reachable, though the call failed.
    simulator.clearFaults();
    simulator.setFault('getStarCheck', { kind: 'success-false' });
    await failureOf(client.getStarCheck('E1'));
    expect(client.lastProbeOk).toBe(true);
    simulator.setFault('getQuotaCheck', { kind: 'status', status: 400 });
    await failureOf(client.getQuotaCheck('E1'));
    expect(client.lastProbeOk).toBe(true);
    // But not one refusing our admin key: every call will fail until the configuration is mended.
    simulator.clearFaults();
    const wrongKey = makeClient({ authValue: 'not-the-admin-key' });
    expect(await wrongKey.probe()).toBe(false);
    expect(wrongKey.lastProbeOk).toBe(false);
    simulator.setFault('getQuotaCheck', { kind: 'status', status: 403 });
    await failureOf(client.getQuotaCheck('E1'));
    expect(client.lastProbeOk).toBe(false);

    const unreachable = makeClient({ baseUrl: `http://127.0.0.1:${await closedPort()}` });
    expect(await unreachable.probe()).toBe(false);
  });

  it('reports each operation once to onCall, with its outcome and duration', async () => {
    const reported: [string, string, number][] = [];
    const client = makeClient({}, { onCall: (operation, outcome, ms) => reported.push([operation, outcome, ms]) });
    simulator.setFault('getUsed', { kind: 'status', status: 500 });
    await client.setTotal('u1', 5);
    await failureOf(client.getUsed('u1'));
    await client.probe();
    expect(reported.map(([operation, outcome]) => [operation, outcome])).toEqual([
      ['setTotal', 'ok'],
      ['getUsed', 'error'],
      ['probe', 'ok'],
    ]);
    for (const [, , ms] of reported) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it('is not broken by a throwing onCall hook', async () => {
    const client = makeClient(
      {},
      {
        onCall: () => {
          throw new Error('metrics bug');
        },
      },
    );
    await client.setTotal('u1', 5);
    expect(simulator.getUser('u1').total).toBe(5);
  });
});

describe('gateway retry policy', () => {
  it('backs off exponentially from the base delay with up to 50% jitter, capped', () => {
    expect([1, 2, 3, 4].map((retry) => backoffDelayMs(retry, 100, () => 0))).toEqual([100, 200, 400, 800]);
    expect(backoffDelayMs(1, 100, () => 0.999)).toBe(150);
    expect(backoffDelayMs(3, 100, () => 0.5)).toBe(500);
    expect(backoffDelayMs(20, 60_000, () => 0)).toBe(MAX_BACKOFF_MS);
  });

  it('classifies HTTP statuses', () => {
    expect(classifyStatus(500)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyStatus(503)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyStatus(429)).toEqual({ retryable: true, mayHaveApplied: false });
    expect(classifyStatus(502)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyStatus(504)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyStatus(400)).toEqual({ retryable: false, mayHaveApplied: false });
    expect(classifyStatus(401)).toEqual({ retryable: false, mayHaveApplied: false });
  });

  it('classifies transport failures by whether a connection was made', () => {
    expect(classifyTransportFailure('ECONNREFUSED', false)).toEqual({ retryable: true, mayHaveApplied: false });
    expect(classifyTransportFailure('ECONNREFUSED', undefined)).toEqual({ retryable: true, mayHaveApplied: false });
    expect(classifyTransportFailure('ETIMEDOUT', true)).toEqual({ retryable: true, mayHaveApplied: true });
    // A connect timeout: the request never left.
    expect(classifyTransportFailure('ETIMEDOUT', false)).toEqual({ retryable: true, mayHaveApplied: false });
    expect(classifyTransportFailure('ECONNRESET', true)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyTransportFailure('ECONNRESET', undefined)).toEqual({ retryable: true, mayHaveApplied: true });
    expect(classifyTransportFailure('CERT_HAS_EXPIRED', true)).toEqual({ retryable: false, mayHaveApplied: true });
    // Name resolution fails before any connection: retried, nothing can have arrived.
    for (const code of ['ENOTFOUND', 'EAI_AGAIN']) {
      expect(classifyTransportFailure(code, undefined), code).toEqual({ retryable: true, mayHaveApplied: false });
    }
    // The other connection failures SPEC §8 retries.
    for (const code of ['EPIPE', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNABORTED']) {
      expect(classifyTransportFailure(code, true).retryable, code).toBe(true);
    }
  });

  it('retries deltas only when they certainly did not arrive', () => {
    const refused = { retryable: true, mayHaveApplied: false };
    const lost = { retryable: true, mayHaveApplied: true };
    const final = { retryable: false, mayHaveApplied: false };
    expect(shouldRetry('delta', refused, 1, 3)).toBe(true);
    expect(shouldRetry('delta', lost, 1, 3)).toBe(false);
    expect(shouldRetry('absolute-write', lost, 1, 3)).toBe(true);
    expect(shouldRetry('read', lost, 3, 3)).toBe(true);
    expect(shouldRetry('read', lost, 4, 3)).toBe(false);
    expect(shouldRetry('read', final, 1, 3)).toBe(false);
  });
});

describe('gateway reply readers', () => {
  it('read quotas given as numbers or decimal strings, and refuse anything else', () => {
    expect(readQuota({ quota: 12.5 })).toBe(1250);
    expect(readQuota({ quota: '-30' })).toBe(-3000);
    expect(readQuota({ quota: 0 })).toBe(0);
    expect(() => readQuota({})).toThrow('no data.quota');
    expect(() => readQuota({ quota: 'lots' })).toThrow('not a decimal');
    expect(() => readQuota('12')).toThrow('not an object');
  });

  it('read models as an array, as JSON array text, or as nothing', () => {
    expect(readModels({ models: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(readModels({ models: '["a","b"]' })).toEqual(['a', 'b']);
    expect(readModels({ models: null })).toEqual([]);
    expect(readModels(null)).toEqual([]);
    expect(() => readModels({ models: 'a,b' })).toThrow('not a JSON array');
    expect(() => readModels({ models: [1] })).toThrow('not an array of names');
  });

  it('read switches as booleans or "true"/"false" text', () => {
    expect(readEnabled({ enabled: true })).toBe(true);
    expect(readEnabled({ enabled: 'false' })).toBe(false);
    expect(readEnabled({ enabled: 'TRUE' })).toBe(true);
    expect(readEnabled({})).toBe(false);
    expect(() => readEnabled({ enabled: 'yes' })).toThrow('not a boolean');
  });

  it('read starred projects as CSV, dropping blanks', () => {
    expect(readStarredProjects({ starred_projects: 'a, b,,c ' })).toEqual(['a', 'b', 'c']);
    expect(readStarredProjects({ starred_projects: '' })).toEqual([]);
    expect(readStarredProjects({})).toEqual([]);
  });
});
