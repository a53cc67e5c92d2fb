import { decimalToCents } from '../../../money.js';
import { isGatewayOperation } from '../gateway.operations.js';
import type { CallFilter, CallOutcome, GatewaySimulator, RecordedCall } from './gateway-simulator.js';
import { parseFaultRequest } from './simulator-faults.js';
import { centsToJson } from './simulator-routes.js';
import type { EmployeePermissions, UserQuota } from './simulator-state.js';

/**
 * The `/__sim/` control endpoints: the same controls as the simulator's methods, over HTTP with JSON,
 * so a simulator running in another process can be driven by tests (see simulator-control.ts). They
 * need no admin key: the simulator is a test tool and only ever listens where tests can reach it.
 * Amounts cross this API as decimal numbers (12.5), as they do on the gateway's own API.
 */

export interface ControlAnswer {
  status: number;
  body: unknown;
}

export interface UserQuotaJson {
  total: number;
  used: number;
}

export type RecordedCallJson = Omit<RecordedCall, 'at'> & { at: string };

const OK: ControlAnswer = { status: 200, body: { ok: true } };
const CALL_OUTCOMES: readonly CallOutcome[] = ['pending', 'ok', 'bad-request', 'unauthorized', 'not-found', 'fault'];

export function handleControlRequest(
  simulator: GatewaySimulator,
  method: string,
  path: string,
  query: URLSearchParams,
  body: string,
): ControlAnswer {
  try {
    return route(simulator, method, path, query, body);
  } catch (error) {
    return { status: 400, body: { error: error instanceof Error ? error.message : String(error) } };
  }
}

function route(
  simulator: GatewaySimulator,
  method: string,
  path: string,
  query: URLSearchParams,
  body: string,
): ControlAnswer {
  const target = `${method} ${path}`;
  switch (target) {
    case 'GET /calls':
      return { status: 200, body: { calls: simulator.calls(callFilter(query)).map(callToJson) } };
    case 'DELETE /calls':
      simulator.clearCalls();
      return OK;
    case 'GET /faults':
      return { status: 200, body: { faults: simulator.faults() } };
    case 'POST /faults': {
      const { route, spec } = parseFaultRequest(parseJson(body));
      simulator.setFault(route, spec);
      return OK;
    }
    case 'DELETE /faults': {
      const faultRoute = query.get('route');
      if (faultRoute === null) simulator.clearFaults();
      else if (faultRoute === '*' || isGatewayOperation(faultRoute)) simulator.clearFaults(faultRoute);
      else throw new Error(`unknown route ${JSON.stringify(faultRoute)}`);
      return OK;
    }
    case 'GET /state': {
      const { users, employees } = simulator.snapshot();
      const usersJson = Object.fromEntries(Object.entries(users).map(([id, quota]) => [id, quotaToJson(quota)]));
      return { status: 200, body: { users: usersJson, employees, faults: simulator.faults() } };
    }
    case 'POST /reset':
      simulator.reset();
      return OK;
    case 'POST /release':
      return { status: 200, body: { released: simulator.release() } };
  }
  const user = /^\/users\/([^/]+)$/.exec(path);
  if (user) {
    const userId = decodeURIComponent(user[1]);
    if (method === 'GET') return { status: 200, body: quotaToJson(simulator.getUser(userId)) };
    if (method === 'PUT') return { status: 200, body: quotaToJson(simulator.setUser(userId, quotaFromJson(body))) };
  }
  const employee = /^\/employees\/([^/]+)$/.exec(path);
  if (employee) {
    const employeeNumber = decodeURIComponent(employee[1]);
    if (method === 'GET') return { status: 200, body: simulator.getEmployee(employeeNumber) };
    if (method === 'PUT') {
      const permissions = employeeFromJson(body);
      return { status: 200, body: simulator.setEmployee(employeeNumber, permissions) };
    }
  }
  return { status: 404, body: { error: `no control endpoint ${target}` } };
}

function callFilter(query: URLSearchParams): CallFilter {
  const filter: CallFilter = {};
  const route = query.get('route');
  if (route !== null) {
    if (!isGatewayOperation(route)) throw new Error(`unknown route ${JSON.stringify(route)}`);
    filter.route = route;
  }
  const method = query.get('method');
  if (method !== null) filter.method = method.toUpperCase();
  const outcome = query.get('outcome');
  if (outcome !== null) {
    if (!(CALL_OUTCOMES as readonly string[]).includes(outcome)) throw new Error(`unknown outcome ${outcome}`);
    filter.outcome = outcome as CallOutcome;
  }
  return filter;
}

function callToJson(call: RecordedCall): RecordedCallJson {
  return { ...call, at: call.at.toISOString() };
}

function quotaToJson(quota: UserQuota): UserQuotaJson {
  return { total: centsToJson(quota.total), used: centsToJson(quota.used) };
}

function quotaFromJson(body: string): Partial<UserQuota> {
  const input = asObject(parseJson(body));
  const quota: Partial<UserQuota> = {};
  for (const name of ['total', 'used'] as const) {
    const value = input[name];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' && typeof value !== 'string') throw new Error(`${name} must be a decimal number`);
    quota[name] = decimalToCents(value);
  }
  return quota;
}

function employeeFromJson(body: string): Partial<EmployeePermissions> {
  const input = asObject(parseJson(body));
  const permissions: Partial<EmployeePermissions> = {};
  if (input.starredProjects !== undefined) {
    if (typeof input.starredProjects !== 'string') throw new Error('starredProjects must be CSV text');
    permissions.starredProjects = input.starredProjects;
  }
  if (input.models !== undefined) {
    const { models } = input;
    if (!Array.isArray(models) || !models.every((model) => typeof model === 'string')) {
      throw new Error('models must be an array of strings');
    }
    permissions.models = models;
  }
  for (const name of ['starCheck', 'quotaCheck'] as const) {
    const value = input[name];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') throw new Error(`${name} must be a boolean`);
    permissions[name] = value;
  }
  return permissions;
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new Error('expected a JSON body');
  }
}

function asObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('expected a JSON object');
  return value as Record<string, unknown>;
}
