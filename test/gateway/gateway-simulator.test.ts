import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import got from 'got';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { GatewayClient } from '../../src/modules/gateway/gateway.client.js';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { GatewaySimulatorControl } from '../../src/modules/gateway/simulator/simulator-control.js';

const ADMIN_KEY = 'simulator-test-key';
const ADMIN = '/v1/chat/completions/quota';

let simulator: GatewaySimulator;
let baseUrl: string;

/** Raw HTTP against the simulator, so its answers are seen exactly as sent. */
const http = got.extend({ throwHttpErrors: false, retry: { limit: 0 }, timeout: { request: 5_000 } });
const withKey = { 'x-admin-key': ADMIN_KEY };

async function getJson(path: string, headers: Record<string, string> = withKey) {
  const response = await http.get(`${baseUrl}${path}`, { headers, responseType: 'json' });
  return { status: response.statusCode, body: response.body as Record<string, unknown> };
}

async function postForm(path: string, form: Record<string, string>, headers: Record<string, string> = withKey) {
  const response = await http.post(`${baseUrl}${path}`, { headers, form, responseType: 'json' });
  return { status: response.statusCode, body: response.body as Record<string, unknown> };
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

describe('GatewaySimulator gateway API', () => {
  it('answers reads of unknown users and employees with zeros, empties and false in the gateway envelope', async () => {
    const ok = { code: 200, message: 'ok', success: true };
    expect((await getJson(`${ADMIN}?user_id=nobody`)).body).toEqual({ ...ok, data: { quota: 0 } });
    expect((await getJson(`${ADMIN}/used?user_id=nobody`)).body).toEqual({ ...ok, data: { quota: 0 } });
    expect((await getJson(`${ADMIN}/star/projects/query?employee_number=E9`)).body).toEqual({
      ...ok,
      data: { starred_projects: '' },
    });
    expect((await getJson('/model-permission?employee_number=E9')).body).toEqual({ ...ok, data: { models: [] } });
    expect((await getJson('/check-star?employee_number=E9')).body).toEqual({ ...ok, data: { enabled: false } });
    expect((await getJson('/check-quota?employee_number=E9')).body).toEqual({ ...ok, data: { enabled: false } });
  });

  it('answers amounts as decimal numbers', async () => {
    simulator.setUser('u1', { total: 1250, used: -3000 });
    expect((await getJson(`${ADMIN}?user_id=u1`)).body.data).toEqual({ quota: 12.5 });
    expect((await getJson(`${ADMIN}/used?user_id=u1`)).body.data).toEqual({ quota: -30 });
  });

  it('refuses a missing or wrong admin key with 401 and applies nothing', async () => {
    const missing = await postForm(`${ADMIN}/refresh`, { user_id: 'u1', quota: '5' }, {});
    expect(missing).toEqual({
      status: 401,
      body: { code: 401, success: false, message: 'invalid or missing admin key', data: null },
    });
    const wrong = await postForm('/check-star/set', { employee_number: 'E1', enabled: 'true' }, { 'x-admin-key': 'x' });
    expect(wrong.status).toBe(401);
    expect(simulator.getUser('u1').total).toBe(0);
    expect(simulator.getEmployee('E1').starCheck).toBe(false);
    expect(simulator.calls().map((call) => [call.outcome, call.authorized, call.applied])).toEqual([
      ['unauthorized', false, false],
      ['unauthorized', false, false],
    ]);
  });

  it.each([
    [`${ADMIN}/refresh`, { quota: '5' }, 'user_id is required'],
    [`${ADMIN}/delta`, { user_id: 'u1', value: 'ten' }, 'value must be a plain decimal number'],
    [`${ADMIN}/used/refresh`, { user_id: 'u1', quota: '1e3' }, 'quota must be a plain decimal number'],
    [`${ADMIN}/star/projects/set`, { employee_number: 'E1' }, 'starred_projects is required'],
    ['/model-permission/set', { employee_number: 'E1', models: 'a,b' }, 'models must be a JSON array'],
    ['/model-permission/set', { employee_number: 'E1', models: '[1]' }, 'models must be a JSON array of strings'],
    ['/check-quota/set', { employee_number: 'E1', enabled: 'yes' }, 'enabled must be "true" or "false"'],
    ['/check-star/set', { enabled: 'true' }, 'employee_number is required'],
  ])('refuses a bad form on %s with 400', async (path, form, message) => {
    const answer = await postForm(path, form);
    expect(answer).toEqual({ status: 400, body: { code: 400, success: false, message, data: null } });
    expect(simulator.snapshot()).toEqual({ users: {}, employees: {} });
  });

  it('refuses a POST body that is not a form', async () => {
    const response = await http.post(`${baseUrl}${ADMIN}/refresh`, {
      headers: withKey,
      json: { user_id: 'u1', quota: 5 },
      responseType: 'json',
    });
    expect(response.statusCode).toBe(400);
    expect(response.body).toMatchObject({ success: false });
  });

  it('answers 404 for unknown routes and wrong methods', async () => {
    expect((await getJson('/nowhere')).status).toBe(404);
    expect((await getJson(`${ADMIN}/refresh?user_id=u1`)).status).toBe(404);
    expect((await postForm(ADMIN, { user_id: 'u1' })).status).toBe(404);
    expect(simulator.calls().every((call) => call.route === null && call.outcome === 'not-found')).toBe(true);
  });

  it('records each call: method, path without query, merged params, time, route and outcome', async () => {
    const before = new Date();
    await http.post(`${baseUrl}${ADMIN}/delta?trace=1`, { headers: withKey, form: { user_id: 'u 1', value: '2.5' } });
    const [call] = simulator.calls();
    expect(call).toMatchObject({
      method: 'POST',
      path: `${ADMIN}/delta`,
      params: { trace: '1', user_id: 'u 1', value: '2.5' },
      route: 'addTotal',
      outcome: 'ok',
      fault: null,
      status: 200,
      applied: true,
      authorized: true,
    });
    expect(call.at).toBeInstanceOf(Date);
    expect(call.at.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(simulator.getUser('u 1').total).toBe(250);
  });
});

describe('GatewaySimulator faults', () => {
  it('applies a fault to the next `times` calls only, then clears it', async () => {
    simulator.setFault('getTotal', { kind: 'status', status: 503, times: 2 });
    expect(simulator.faults()).toEqual([{ route: 'getTotal', kind: 'status', status: 503, remaining: 2 }]);
    expect((await getJson(`${ADMIN}?user_id=u1`)).status).toBe(503);
    expect(simulator.faults()[0].remaining).toBe(1);
    const second = await getJson(`${ADMIN}?user_id=u1`);
    expect(second).toEqual({
      status: 503,
      body: { code: 503, success: false, message: 'simulated fault', data: null },
    });
    expect(simulator.faults()).toEqual([]);
    expect((await getJson(`${ADMIN}?user_id=u1`)).status).toBe(200);
  });

  it('keeps a fault without `times` until cleared, and only on its route', async () => {
    simulator.setFault('setModels', { kind: 'status', status: 500 });
    for (let i = 0; i < 3; i++)
      expect((await postForm('/model-permission/set', { employee_number: 'E', models: '[]' })).status).toBe(500);
    expect((await getJson('/model-permission?employee_number=E')).status).toBe(200);
    simulator.clearFaults('setModels');
    expect((await postForm('/model-permission/set', { employee_number: 'E', models: '["m"]' })).status).toBe(200);
  });

  it("applies '*' to every route, and a route's own fault takes precedence", async () => {
    simulator.setFault('*', { kind: 'status', status: 502 });
    simulator.setFault('getUsed', { kind: 'status', status: 429 });
    expect((await getJson('/check-quota?employee_number=E')).status).toBe(502);
    expect((await getJson(`${ADMIN}?user_id=u`)).status).toBe(502);
    expect((await getJson(`${ADMIN}/used?user_id=u`)).status).toBe(429);
  });

  it('drop closes the connection without applying anything', async () => {
    simulator.setFault('setTotal', { kind: 'drop' });
    await expect(
      http.post(`${baseUrl}${ADMIN}/refresh`, { headers: withKey, form: { user_id: 'u1', quota: '5' } }),
    ).rejects.toMatchObject({
      code: 'ECONNRESET',
    });
    expect(simulator.getUser('u1').total).toBe(0);
    expect(simulator.calls()[0]).toMatchObject({ outcome: 'fault', fault: 'drop', status: null, applied: false });
  });

  it('applied-then-drop applies the change and then closes the connection', async () => {
    simulator.setFault('addUsed', { kind: 'applied-then-drop' });
    await expect(
      http.post(`${baseUrl}${ADMIN}/used/delta`, { headers: withKey, form: { user_id: 'u1', value: '5' } }),
    ).rejects.toMatchObject({
      code: 'ECONNRESET',
    });
    expect(simulator.getUser('u1').used).toBe(500);
    expect(simulator.calls()[0]).toMatchObject({
      outcome: 'fault',
      fault: 'applied-then-drop',
      status: null,
      applied: true,
    });
  });

  it('applied-then-status applies the change and answers the status anyway', async () => {
    simulator.setFault('setStarCheck', { kind: 'applied-then-status', status: 500, times: 1 });
    expect((await postForm('/check-star/set', { employee_number: 'E1', enabled: 'true' })).status).toBe(500);
    expect(simulator.getEmployee('E1').starCheck).toBe(true);
  });

  it('slow answers normally after the delay', async () => {
    simulator.setFault('getQuotaCheck', { kind: 'slow', delayMs: 150, times: 1 });
    const started = Date.now();
    const answer = await getJson('/check-quota?employee_number=E1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(answer.body).toMatchObject({ success: true, data: { enabled: false } });
    expect(simulator.calls()[0]).toMatchObject({ fault: 'slow', outcome: 'ok', status: 200 });
  });

  it('hold keeps a call in flight until release(), then handles it normally (and applies it)', async () => {
    simulator.setFault('setStarCheck', { kind: 'hold', times: 1 });
    const held = postForm('/check-star/set', { employee_number: 'E1', enabled: 'true' });
    await expect.poll(() => simulator.calls({ outcome: 'pending' }).length).toBe(1);
    expect(simulator.getEmployee('E1').starCheck).toBe(false);
    expect(simulator.release()).toBe(1);
    expect((await held).status).toBe(200);
    expect(simulator.getEmployee('E1').starCheck).toBe(true);
    expect(simulator.calls()[0]).toMatchObject({ fault: 'hold', outcome: 'ok', status: 200 });
    expect(simulator.release()).toBe(0);
  });

  it('non-json and success-false answer 200 with a body the client must refuse', async () => {
    simulator.setFault('getTotal', { kind: 'non-json', times: 1 });
    const html = await http.get(`${baseUrl}${ADMIN}?user_id=u1`, { headers: withKey });
    expect(html.statusCode).toBe(200);
    expect(() => JSON.parse(html.body)).toThrow();
    simulator.setFault('getTotal', { kind: 'success-false', message: 'nope', times: 1 });
    expect(await getJson(`${ADMIN}?user_id=u1`)).toEqual({
      status: 200,
      body: { code: 500, message: 'nope', success: false, data: null },
    });
  });

  it.each([{ kind: 'slow', delayMs: 60_000 } as const, { kind: 'hold' } as const])(
    'stop() does not wait for calls held by a $kind fault',
    async (fault) => {
      const own = new GatewaySimulator();
      const url = await own.start();
      own.setFault('*', fault);
      const pending = http.get(`${url}${ADMIN}?user_id=u1`);
      await expect.poll(() => own.calls().length).toBe(1);
      await own.stop();
      await expect(pending).rejects.toMatchObject({ code: 'ECONNRESET' });
      expect(own.calls()[0].outcome).toBe('fault');
    },
  );

  it('restore() puts back a snapshot (the embedded mode keeps one across restarts)', async () => {
    const source = new GatewaySimulator();
    source.setUser('u1', { total: 1_250, used: 3 });
    source.setEmployee('E1', { models: ['m'], starCheck: true, starredProjects: 'a,b' });
    const copy = new GatewaySimulator();
    copy.setUser('stale', { total: 1 });
    copy.restore(JSON.parse(JSON.stringify(source.snapshot())));
    expect(copy.snapshot()).toEqual(source.snapshot());
  });

  it('reset() forgets state, faults and calls', async () => {
    simulator.setUser('u1', { total: 100 });
    simulator.setEmployee('E1', { models: ['m'] });
    simulator.setFault('*', { kind: 'drop' });
    await getJson(`${ADMIN}?user_id=u1`).catch(() => undefined);
    simulator.reset();
    expect(simulator.snapshot()).toEqual({ users: {}, employees: {} });
    expect(simulator.faults()).toEqual([]);
    expect(simulator.calls()).toEqual([]);
  });
});

describe('GatewaySimulatorControl over HTTP', () => {
  let control: GatewaySimulatorControl;

  beforeAll(() => {
    control = new GatewaySimulatorControl(baseUrl);
  });

  it('sets and reads users in cents (decimals on the wire) and employees', async () => {
    expect(await control.setUser('a&b=c d/é', { total: 1250, used: 1 })).toEqual({ total: 1250, used: 1 });
    expect(await control.getUser('a&b=c d/é')).toEqual({ total: 1250, used: 1 });
    expect(simulator.getUser('a&b=c d/é')).toEqual({ total: 1250, used: 1 });
    await control.setUser('a&b=c d/é', { used: -3000 });
    expect(await control.getUser('a&b=c d/é')).toEqual({ total: 1250, used: -3000 });
    expect(await control.getUser('nobody')).toEqual({ total: 0, used: 0 });

    await control.setEmployee('E1', { models: ['gpt-4o'], starCheck: true });
    expect(await control.getEmployee('E1')).toEqual({
      starredProjects: '',
      models: ['gpt-4o'],
      starCheck: true,
      quotaCheck: false,
    });
    const state = await control.state();
    expect(state.users).toEqual({ 'a&b=c d/é': { total: 1250, used: -3000 } });
    expect(Object.keys(state.employees)).toEqual(['E1']);
  });

  it('switches faults with `times`, lists and clears them', async () => {
    const client = new GatewayClient(
      {
        baseUrl,
        adminPath: ADMIN,
        authHeader: 'x-admin-key',
        authValue: ADMIN_KEY,
        timeoutMs: 1_000,
        retries: 0,
        retryBaseDelayMs: 1,
      },
      silentLogger(),
    );
    await control.setFault('setTotal', { kind: 'status', status: 503, times: 2 });
    await control.setFault('getModels', { kind: 'drop' });
    expect(await control.faults()).toEqual([
      { route: 'setTotal', kind: 'status', status: 503, remaining: 2 },
      { route: 'getModels', kind: 'drop', remaining: null },
    ]);
    await expect(client.setTotal('u1', 100)).rejects.toThrow('HTTP 503');
    await expect(client.setTotal('u1', 100)).rejects.toThrow('HTTP 503');
    await client.setTotal('u1', 100);
    expect(await control.getUser('u1')).toEqual({ total: 100, used: 0 });

    await control.clearFaults('getModels');
    expect(await control.faults()).toEqual([]);
    expect(await client.getModels('E1')).toEqual([]);

    await control.setFault('getTotal', { kind: 'hold', times: 1 });
    const held = client.getTotal('u1');
    await expect.poll(async () => (await control.calls({ outcome: 'pending' })).length).toBe(1);
    expect(await control.release()).toBe(1);
    expect(await held).toBe(100);

    await control.setFault('*', { kind: 'slow', delayMs: 10 });
    await control.clearFaults();
    expect((await control.state()).faults).toEqual([]);
    client.close();
  });

  it('refuses an invalid fault with a readable message', async () => {
    await expect(control.setFault('*', { kind: 'explode' } as never)).rejects.toThrow('unknown fault kind "explode"');
    await expect(control.setFault('nope' as never, { kind: 'drop' })).rejects.toThrow('unknown route "nope"');
    await expect(control.setFault('getTotal', { kind: 'status' } as never)).rejects.toThrow(
      'status must be an HTTP status',
    );
    await expect(control.setFault('getTotal', { kind: 'drop', times: 0 })).rejects.toThrow(
      'times must be a whole number',
    );
  });

  it('reads, filters and clears the call log', async () => {
    await postForm(`${ADMIN}/refresh`, { user_id: 'u1', quota: '1' });
    await getJson(`${ADMIN}?user_id=u1`);
    await getJson(`${ADMIN}?user_id=u1`, {});
    const calls = await control.calls();
    expect(calls.map((call) => [call.route, call.outcome])).toEqual([
      ['setTotal', 'ok'],
      ['getTotal', 'ok'],
      ['getTotal', 'unauthorized'],
    ]);
    expect(calls[0].at).toBeInstanceOf(Date);
    expect(calls[0].params).toEqual({ user_id: 'u1', quota: '1' });
    expect(await control.calls({ route: 'getTotal' })).toHaveLength(2);
    expect(await control.calls({ outcome: 'unauthorized' })).toHaveLength(1);
    expect(await control.calls({ method: 'POST' })).toHaveLength(1);
    await control.clearCalls();
    expect(await control.calls()).toEqual([]);
  });

  it('resets everything', async () => {
    await control.setUser('u1', { total: 5 });
    await control.setFault('*', { kind: 'drop' });
    await getJson(`${ADMIN}?user_id=u1`).catch(() => undefined);
    await control.reset();
    expect(await control.state()).toEqual({ users: {}, employees: {}, faults: [] });
    expect(await control.calls()).toEqual([]);
  });
});

describe('npm run gateway-sim (out of process)', () => {
  let child: ChildProcess | undefined;

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
  });

  it('serves the gateway API with the configured key and path, is driven over HTTP, and stops on SIGTERM', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/gateway-sim.ts'], {
      cwd: root,
      env: {
        ...process.env,
        GATEWAY_SIM_PORT: '0',
        AIGATEWAY_AUTH_HEADER: 'X-Custom-Key',
        AIGATEWAY_AUTH_VALUE: 'cli-key',
        AIGATEWAY_ADMIN_PATH: '/admin/quota',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      let output = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]);
      });
      child?.once('exit', (code) => reject(new Error(`gateway-sim exited early (${code}): ${output}`)));
    });

    const client = new GatewayClient(
      {
        baseUrl: url,
        adminPath: '/admin/quota',
        authHeader: 'x-custom-key',
        authValue: 'cli-key',
        timeoutMs: 2_000,
        retries: 2,
        retryBaseDelayMs: 5,
      },
      silentLogger(),
    );
    const control = new GatewaySimulatorControl(url);
    await client.setTotal('u1', 1234);
    expect(await control.getUser('u1')).toEqual({ total: 1234, used: 0 });
    await control.setFault('getTotal', { kind: 'status', status: 503, times: 1 });
    expect(await client.getTotal('u1')).toBe(1234);
    expect((await control.calls({ route: 'getTotal' })).map((call) => call.status)).toEqual([503, 200]);
    client.close();

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
  });
});
