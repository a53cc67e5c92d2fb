import { type GatewayOperation, isGatewayOperation } from '../gateway.operations.js';

/**
 * Failure modes the simulator can switch on per route, to test the client's retry and ambiguity rules:
 * - status: answer this HTTP status without applying anything;
 * - slow: wait, then handle the call normally (the change is applied even if the client gave up);
 * - hold: wait until the test releases held calls (`release()`), then handle the call normally — for
 *   tests that need a call in flight while something else happens, without depending on timing;
 * - drop: close the connection without answering; nothing applied;
 * - applied-then-drop: apply the change, then close without answering ("applied, answer lost");
 * - applied-then-status: apply the change, then answer this status anyway;
 * - non-json: answer 200 with a body that is not JSON; nothing applied;
 * - success-false: answer 200 with `success: false`; nothing applied.
 */
export type SimulatorFault =
  | { kind: 'status'; status: number }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'hold' }
  | { kind: 'drop' }
  | { kind: 'applied-then-drop' }
  | { kind: 'applied-then-status'; status: number }
  | { kind: 'non-json' }
  | { kind: 'success-false'; message?: string };

export type FaultKind = SimulatorFault['kind'];

/** `times`: apply to the next N calls of the route only, then clear; omitted = until cleared. */
export type FaultSpec = SimulatorFault & { times?: number };

/** A route name, or '*' for every route without a fault of its own. */
export type FaultRoute = GatewayOperation | '*';

export type ActiveFault = SimulatorFault & { route: FaultRoute; remaining: number | null };

const FAULT_KINDS: readonly FaultKind[] = [
  'status',
  'slow',
  'hold',
  'drop',
  'applied-then-drop',
  'applied-then-status',
  'non-json',
  'success-false',
];

export class FaultBoard {
  private readonly faults = new Map<FaultRoute, { fault: SimulatorFault; remaining: number | null }>();

  set(route: FaultRoute, spec: FaultSpec): void {
    const { times, ...fault } = spec;
    this.faults.set(route, { fault: fault as SimulatorFault, remaining: times ?? null });
  }

  clear(route?: FaultRoute): void {
    if (route === undefined) this.faults.clear();
    else this.faults.delete(route);
  }

  /** The fault that applies to this call, counting it against the fault's `times`. */
  take(route: GatewayOperation): SimulatorFault | undefined {
    const key: FaultRoute | undefined = this.faults.has(route) ? route : this.faults.has('*') ? '*' : undefined;
    if (key === undefined) return undefined;
    const entry = this.faults.get(key)!;
    if (entry.remaining !== null) {
      entry.remaining -= 1;
      if (entry.remaining <= 0) this.faults.delete(key);
    }
    return entry.fault;
  }

  list(): ActiveFault[] {
    return [...this.faults].map(([route, { fault, remaining }]) => ({ ...fault, route, remaining }));
  }
}

/** Validates a fault sent over HTTP (`POST /__sim/faults`); throws with a readable message. */
export function parseFaultRequest(input: unknown): { route: FaultRoute; spec: FaultSpec } {
  if (typeof input !== 'object' || input === null) throw new Error('expected a JSON object');
  const body = input as Record<string, unknown>;
  const { route, kind } = body;
  if (typeof route !== 'string' || (route !== '*' && !isGatewayOperation(route))) {
    throw new Error(`unknown route ${JSON.stringify(route)}`);
  }
  if (typeof kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`unknown fault kind ${JSON.stringify(kind)}`);
  }
  const times = optionalWholeNumber(body.times, 'times', 1);
  let fault: SimulatorFault;
  switch (kind as FaultKind) {
    case 'status':
    case 'applied-then-status': {
      const status = optionalWholeNumber(body.status, 'status', 100);
      if (status === undefined || status > 599) throw new Error('status must be an HTTP status (100-599)');
      fault = { kind: kind as 'status' | 'applied-then-status', status };
      break;
    }
    case 'slow': {
      const delayMs = optionalWholeNumber(body.delayMs, 'delayMs', 0);
      if (delayMs === undefined) throw new Error('delayMs is required for a slow fault');
      fault = { kind: 'slow', delayMs };
      break;
    }
    case 'success-false':
      if (body.message !== undefined && typeof body.message !== 'string') throw new Error('message must be a string');
      fault = { kind: 'success-false', message: body.message };
      break;
    default:
      fault = { kind: kind as 'hold' | 'drop' | 'applied-then-drop' | 'non-json' };
  }
  return { route, spec: times === undefined ? fault : { ...fault, times } };
}

function optionalWholeNumber(value: unknown, name: string, min: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be a whole number >= ${min}`);
  }
  return value;
}
