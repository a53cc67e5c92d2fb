import got, { type Got } from 'got';
import { type Cents, decimalToCents } from '../../../money.js';
import type { CallFilter, RecordedCall } from './gateway-simulator.js';
import type { RecordedCallJson, UserQuotaJson } from './simulator-control-api.js';
import type { ActiveFault, FaultRoute, FaultSpec } from './simulator-faults.js';
import type { EmployeePermissions, StateSnapshot, UserQuota } from './simulator-state.js';

export interface SimulatorStateView extends StateSnapshot {
  faults: ActiveFault[];
}

/**
 * Drives a gateway simulator in another process through its `/__sim/` endpoints, with the same
 * vocabulary as the in-process GatewaySimulator (amounts in cents here, decimals on the wire).
 */
export class GatewaySimulatorControl {
  private readonly http: Got;

  /** `simulatorUrl`: the simulator's URL as printed at start; the control endpoints sit at its root. */
  constructor(simulatorUrl: string, timeoutMs = 5_000) {
    this.http = got.extend({
      prefixUrl: `${new URL(simulatorUrl).origin}/__sim/`,
      timeout: { request: timeoutMs },
      retry: { limit: 0 },
      throwHttpErrors: false,
      responseType: 'text',
    });
  }

  async calls(filter: CallFilter = {}): Promise<RecordedCall[]> {
    const searchParams = Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined));
    const body = await this.request<{ calls: RecordedCallJson[] }>('GET', 'calls', { searchParams });
    return body.calls.map((call) => ({ ...call, at: new Date(call.at) }));
  }

  async clearCalls(): Promise<void> {
    await this.request('DELETE', 'calls');
  }

  async setFault(route: FaultRoute, fault: FaultSpec): Promise<void> {
    await this.request('POST', 'faults', { json: { route, ...fault } });
  }

  async clearFaults(route?: FaultRoute): Promise<void> {
    await this.request('DELETE', 'faults', { searchParams: route === undefined ? {} : { route } });
  }

  async faults(): Promise<ActiveFault[]> {
    return (await this.request<{ faults: ActiveFault[] }>('GET', 'faults')).faults;
  }

  async state(): Promise<SimulatorStateView> {
    const body = await this.request<{
      users: Record<string, UserQuotaJson>;
      employees: Record<string, EmployeePermissions>;
      faults: ActiveFault[];
    }>('GET', 'state');
    const users = Object.fromEntries(Object.entries(body.users).map(([id, quota]) => [id, quotaFromJson(quota)]));
    return { users, employees: body.employees, faults: body.faults };
  }

  async reset(): Promise<void> {
    await this.request('POST', 'reset');
  }

  /** Lets the calls held by a `hold` fault go on; returns how many there were. */
  async release(): Promise<number> {
    return (await this.request<{ released: number }>('POST', 'release')).released;
  }

  async getUser(userId: string): Promise<UserQuota> {
    return quotaFromJson(await this.request<UserQuotaJson>('GET', `users/${encodeURIComponent(userId)}`));
  }

  async setUser(userId: string, quota: Partial<UserQuota>): Promise<UserQuota> {
    const json: Partial<UserQuotaJson> = {};
    if (quota.total !== undefined) json.total = centsToJson(quota.total);
    if (quota.used !== undefined) json.used = centsToJson(quota.used);
    return quotaFromJson(await this.request<UserQuotaJson>('PUT', `users/${encodeURIComponent(userId)}`, { json }));
  }

  getEmployee(employeeNumber: string): Promise<EmployeePermissions> {
    return this.request('GET', `employees/${encodeURIComponent(employeeNumber)}`);
  }

  setEmployee(employeeNumber: string, permissions: Partial<EmployeePermissions>): Promise<EmployeePermissions> {
    return this.request('PUT', `employees/${encodeURIComponent(employeeNumber)}`, { json: permissions });
  }

  private async request<T = unknown>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    options: { searchParams?: Record<string, string>; json?: unknown } = {},
  ): Promise<T> {
    const response = await this.http(path, { method, searchParams: options.searchParams, json: options.json });
    let body: unknown;
    try {
      body = JSON.parse(response.body);
    } catch {
      throw new Error(`simulator control ${method} /__sim/${path}: HTTP ${response.statusCode}, not JSON`);
    }
    if (response.statusCode !== 200) {
      const error = (body as { error?: unknown }).error;
      throw new Error(`simulator control ${method} /__sim/${path}: HTTP ${response.statusCode} ${String(error)}`);
    }
    return body as T;
  }
}

function quotaFromJson(quota: UserQuotaJson): UserQuota {
  return { total: decimalToCents(quota.total), used: decimalToCents(quota.used) };
}

/** Exact for whole cents: JSON prints 1250 / 100 as 12.5. */
function centsToJson(cents: Cents): number {
  return cents / 100;
}
