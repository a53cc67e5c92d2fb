import { type Cents, decimalToCents } from '../../../money.js';
import type { GatewayOperation } from '../gateway.operations.js';
import type { SimulatorState } from './simulator-state.js';

/**
 * The gateway's admin API as the simulator understands it (SPEC §8): which method and path is which
 * operation, and what each one does to the in-memory state. Spelled out independently of the client.
 */

export type Params = Record<string, string>;

/** A request the gateway would refuse with 400. */
export class BadRequest extends Error {}

/** `METHOD path` → operation. Quota routes under the admin path, permission routes at the root. */
export function buildRouteTable(adminPath: string): Map<string, GatewayOperation> {
  const admin = adminPath.replace(/\/+$/, '');
  const routes: [string, string, GatewayOperation][] = [
    ['GET', admin, 'getTotal'],
    ['POST', `${admin}/refresh`, 'setTotal'],
    ['POST', `${admin}/delta`, 'addTotal'],
    ['GET', `${admin}/used`, 'getUsed'],
    ['POST', `${admin}/used/refresh`, 'setUsed'],
    ['POST', `${admin}/used/delta`, 'addUsed'],
    ['GET', `${admin}/star/projects/query`, 'getStarredProjects'],
    ['POST', `${admin}/star/projects/set`, 'setStarredProjects'],
    ['GET', '/model-permission', 'getModels'],
    ['POST', '/model-permission/set', 'setModels'],
    ['GET', '/check-star', 'getStarCheck'],
    ['POST', '/check-star/set', 'setStarCheck'],
    ['GET', '/check-quota', 'getQuotaCheck'],
    ['POST', '/check-quota/set', 'setQuotaCheck'],
  ];
  return new Map(routes.map(([method, path, operation]) => [`${method} ${path || '/'}`, operation]));
}

/** Applies one operation; returns the reply's `data`. Writes answer `data: null`. */
export function runOperation(operation: GatewayOperation, params: Params, state: SimulatorState): unknown {
  switch (operation) {
    case 'getTotal':
      return { quota: centsToJson(state.getUser(required(params, 'user_id')).total) };
    case 'getUsed':
      return { quota: centsToJson(state.getUser(required(params, 'user_id')).used) };
    case 'setTotal':
      state.setUser(required(params, 'user_id'), { total: amount(params, 'quota') });
      return null;
    case 'setUsed':
      state.setUser(required(params, 'user_id'), { used: amount(params, 'quota') });
      return null;
    case 'addTotal': {
      const userId = required(params, 'user_id');
      const delta = amount(params, 'value');
      state.setUser(userId, { total: state.getUser(userId).total + delta });
      return null;
    }
    case 'addUsed': {
      const userId = required(params, 'user_id');
      const delta = amount(params, 'value');
      state.setUser(userId, { used: state.getUser(userId).used + delta });
      return null;
    }
    case 'getStarredProjects':
      return { starred_projects: state.getEmployee(required(params, 'employee_number')).starredProjects };
    case 'setStarredProjects': {
      const employeeNumber = required(params, 'employee_number');
      // An empty list is a valid value (it clears the stars), so only absence is refused.
      if (params.starred_projects === undefined) throw new BadRequest('starred_projects is required');
      state.setEmployee(employeeNumber, { starredProjects: params.starred_projects });
      return null;
    }
    case 'getModels':
      return { models: state.getEmployee(required(params, 'employee_number')).models };
    case 'setModels':
      state.setEmployee(required(params, 'employee_number'), { models: modelList(params) });
      return null;
    case 'getStarCheck':
      return { enabled: state.getEmployee(required(params, 'employee_number')).starCheck };
    case 'setStarCheck':
      state.setEmployee(required(params, 'employee_number'), { starCheck: flag(params) });
      return null;
    case 'getQuotaCheck':
      return { enabled: state.getEmployee(required(params, 'employee_number')).quotaCheck };
    case 'setQuotaCheck':
      state.setEmployee(required(params, 'employee_number'), { quotaCheck: flag(params) });
      return null;
  }
}

/** The gateway answers amounts as JSON numbers (12.5); dividing exact cents prints them exactly. */
export function centsToJson(cents: Cents): number {
  return cents / 100;
}

function required(params: Params, name: string): string {
  const value = params[name];
  if (value === undefined || value.trim() === '') throw new BadRequest(`${name} is required`);
  return value;
}

function amount(params: Params, name: string): Cents {
  const value = required(params, name).trim();
  if (!/^[+-]?\d+(\.\d+)?$/.test(value)) throw new BadRequest(`${name} must be a plain decimal number`);
  return decimalToCents(value);
}

function flag(params: Params): boolean {
  const value = required(params, 'enabled');
  if (value !== 'true' && value !== 'false') throw new BadRequest('enabled must be "true" or "false"');
  return value === 'true';
}

function modelList(params: Params): string[] {
  const text = required(params, 'models');
  let models: unknown;
  try {
    models = JSON.parse(text);
  } catch {
    throw new BadRequest('models must be a JSON array');
  }
  if (!Array.isArray(models) || !models.every((model) => typeof model === 'string')) {
    throw new BadRequest('models must be a JSON array of strings');
  }
  return models;
}
