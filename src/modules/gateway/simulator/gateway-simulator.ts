import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayOperation } from '../gateway.operations.js';
import { handleControlRequest } from './simulator-control-api.js';
import { type ActiveFault, FaultBoard, type FaultKind, type FaultRoute, type FaultSpec } from './simulator-faults.js';
import { BadRequest, buildRouteTable, type Params, runOperation } from './simulator-routes.js';
import { type EmployeePermissions, SimulatorState, type StateSnapshot, type UserQuota } from './simulator-state.js';

export interface GatewaySimulatorOptions {
  /** Admin header name (default `x-admin-key`). */
  authHeader?: string;
  /** Expected admin key (default ''). With '' only a missing or empty header is accepted. */
  authValue?: string;
  /** Default `/v1/chat/completions/quota`. */
  adminPath?: string;
  /** A path prefix in front of every gateway route (e.g. `/gw`), to test base URLs with a path. */
  basePath?: string;
}

/** What became of a received call; 'pending' while a slow fault holds it. */
export type CallOutcome = 'pending' | 'ok' | 'bad-request' | 'unauthorized' | 'not-found' | 'fault';

export interface RecordedCall {
  method: string;
  /** Without the query string. */
  path: string;
  /** Query and form fields merged (form wins). */
  params: Params;
  at: Date;
  /** null when no route matched. */
  route: GatewayOperation | null;
  outcome: CallOutcome;
  /** The fault that hit this call, if any. */
  fault: FaultKind | null;
  /** HTTP status answered; null while pending or when the connection was dropped. */
  status: number | null;
  /** Whether the call changed the state. */
  applied: boolean;
  /** Whether it carried the right admin key. */
  authorized: boolean;
}

export interface CallFilter {
  route?: GatewayOperation;
  method?: string;
  outcome?: CallOutcome;
}

interface HandlerResult {
  status: number;
  body: unknown;
  outcome: CallOutcome;
  applied: boolean;
}

const MAX_BODY_BYTES = 1_000_000;
const CONTROL_PREFIX = '/__sim';
const FORM_TYPE = 'application/x-www-form-urlencoded';

/**
 * A stand-in for the AI gateway's admin API (SPEC §8): a real HTTP server on loopback with in-memory
 * counters, the same admin-key check and reply envelope, switchable faults per route and a log of
 * every call received. Tests and embedded mode talk to it over HTTP through the real GatewayClient.
 */
export class GatewaySimulator {
  private readonly authHeader: string;
  private readonly authValue: string;
  private readonly basePath: string;
  private readonly routes: Map<string, GatewayOperation>;
  private readonly state = new SimulatorState();
  private readonly faultBoard = new FaultBoard();
  private callLog: RecordedCall[] = [];
  private server: Server | undefined;
  private baseUrl: string | undefined;
  /** Aborts the waits of slow faults when the simulator stops. */
  private stopping = new AbortController();
  /** Resumes calls held by a `hold` fault (release()). */
  private readonly held: (() => void)[] = [];

  constructor(options: GatewaySimulatorOptions = {}) {
    this.authHeader = (options.authHeader ?? 'x-admin-key').toLowerCase();
    this.authValue = options.authValue ?? '';
    this.basePath = (options.basePath ?? '').replace(/\/+$/, '');
    this.routes = buildRouteTable(options.adminPath ?? '/v1/chat/completions/quota');
  }

  /** Listens (port 0 = any free port) and returns the base URL for a GatewayClient. */
  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    if (this.server) throw new Error('gateway simulator already started');
    const server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    this.baseUrl = `http://${urlHost(host)}:${address.port}${this.basePath}`;
    return this.baseUrl;
  }

  /** Stops listening, cuts open connections (keep-alive ones too) and abandons calls held by slow and hold faults. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.baseUrl = undefined;
    this.stopping.abort();
    this.stopping = new AbortController();
    this.held.length = 0;
    await new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  }

  get url(): string {
    if (this.baseUrl === undefined) throw new Error('gateway simulator not started');
    return this.baseUrl;
  }

  calls(filter: CallFilter = {}): RecordedCall[] {
    return this.callLog
      .filter(
        (call) =>
          (filter.route === undefined || call.route === filter.route) &&
          (filter.method === undefined || call.method === filter.method) &&
          (filter.outcome === undefined || call.outcome === filter.outcome),
      )
      .map((call) => ({ ...call, params: { ...call.params } }));
  }

  clearCalls(): void {
    this.callLog = [];
  }

  setFault(route: FaultRoute, fault: FaultSpec): void {
    this.faultBoard.set(route, fault);
  }

  clearFaults(route?: FaultRoute): void {
    this.faultBoard.clear(route);
  }

  faults(): ActiveFault[] {
    return this.faultBoard.list();
  }

  /** Lets every call held by a `hold` fault go on (handled normally); returns how many there were. */
  release(): number {
    const held = this.held.splice(0);
    for (const resume of held) resume();
    return held.length;
  }

  getUser(userId: string): UserQuota {
    return this.state.getUser(userId);
  }

  setUser(userId: string, quota: Partial<UserQuota>): UserQuota {
    return this.state.setUser(userId, quota);
  }

  getEmployee(employeeNumber: string): EmployeePermissions {
    return this.state.getEmployee(employeeNumber);
  }

  setEmployee(employeeNumber: string, permissions: Partial<EmployeePermissions>): EmployeePermissions {
    return this.state.setEmployee(employeeNumber, permissions);
  }

  snapshot(): StateSnapshot {
    return this.state.snapshot();
  }

  /** Replaces the counters and permissions with a snapshot's (faults and recorded calls stay). */
  restore(snapshot: StateSnapshot): void {
    this.state.reset();
    for (const [userId, quota] of Object.entries(snapshot.users)) this.state.setUser(userId, quota);
    for (const [number, permissions] of Object.entries(snapshot.employees)) this.state.setEmployee(number, permissions);
  }

  /** Forgets all state, faults and recorded calls, and lets held calls go on. */
  reset(): void {
    this.state.reset();
    this.faultBoard.clear();
    this.release();
    this.clearCalls();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://simulator');
      const body = await readBody(req);
      if (body === undefined) {
        res.setHeader('connection', 'close');
        send(res, 413, envelopeError(413, 'request body too large'));
        return;
      }
      const method = req.method ?? 'GET';
      if (url.pathname.startsWith(`${CONTROL_PREFIX}/`)) {
        const path = url.pathname.slice(CONTROL_PREFIX.length);
        const answer = handleControlRequest(this, method, path, url.searchParams, body);
        send(res, answer.status, answer.body);
        return;
      }
      await this.handleGateway(req, res, method, url, body);
    } catch {
      // A bug in the simulator must show as a 500, not crash the test process.
      if (!res.headersSent && !res.destroyed) send(res, 500, envelopeError(500, 'simulator error'));
      else res.destroy();
    }
  }

  private async handleGateway(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    url: URL,
    body: string,
  ): Promise<void> {
    const isForm = (req.headers['content-type'] ?? '').toLowerCase().startsWith(FORM_TYPE);
    const form = method === 'POST' && isForm ? Object.fromEntries(new URLSearchParams(body)) : {};
    const params: Params = { ...Object.fromEntries(url.searchParams), ...form };
    const route = this.matchRoute(method, url.pathname);
    const call: RecordedCall = {
      method,
      path: url.pathname,
      params,
      at: new Date(),
      route: route ?? null,
      outcome: 'pending',
      fault: null,
      status: null,
      applied: false,
      authorized: this.isAuthorized(req),
    };
    this.callLog.push(call);
    if (route === undefined) {
      answer(res, call, {
        status: 404,
        body: envelopeError(404, 'no such route'),
        outcome: 'not-found',
        applied: false,
      });
      return;
    }

    const fault = this.faultBoard.take(route);
    call.fault = fault?.kind ?? null;
    switch (fault?.kind) {
      case 'status':
        answer(res, call, faultAnswer(fault.status, false));
        return;
      case 'drop':
        drop(req, call);
        return;
      case 'non-json':
        answer(res, call, { status: 200, body: '<html>upstream error</html>', outcome: 'fault', applied: false });
        return;
      case 'success-false': {
        const reply = { code: 500, message: fault.message ?? 'simulated failure', success: false, data: null };
        answer(res, call, { status: 200, body: reply, outcome: 'fault', applied: false });
        return;
      }
      case 'slow':
        try {
          await sleep(fault.delayMs, undefined, { signal: this.stopping.signal });
        } catch {
          drop(req, call);
          return;
        }
        break;
      case 'hold': {
        const signal = this.stopping.signal;
        const released = await new Promise<boolean>((resolve) => {
          if (signal.aborted) return resolve(false);
          signal.addEventListener('abort', () => resolve(false), { once: true });
          this.held.push(() => resolve(true));
        });
        if (!released) {
          drop(req, call);
          return;
        }
        break;
      }
    }

    const result = this.runGatewayCall(route, method, params, call.authorized, isForm);
    if (fault?.kind === 'applied-then-drop') {
      call.applied = result.applied;
      drop(req, call);
      return;
    }
    if (fault?.kind === 'applied-then-status') {
      answer(res, call, faultAnswer(fault.status, result.applied));
      return;
    }
    answer(res, call, result);
  }

  private runGatewayCall(
    route: GatewayOperation,
    method: string,
    params: Params,
    authorized: boolean,
    isForm: boolean,
  ): HandlerResult {
    if (!authorized) {
      return {
        status: 401,
        body: envelopeError(401, 'invalid or missing admin key'),
        outcome: 'unauthorized',
        applied: false,
      };
    }
    if (method === 'POST' && !isForm) {
      return {
        status: 400,
        body: envelopeError(400, `expected an ${FORM_TYPE} body`),
        outcome: 'bad-request',
        applied: false,
      };
    }
    try {
      const data = runOperation(route, params, this.state);
      const body = { code: 200, message: 'ok', success: true, data };
      return { status: 200, body, outcome: 'ok', applied: method === 'POST' };
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      return { status: 400, body: envelopeError(400, error.message), outcome: 'bad-request', applied: false };
    }
  }

  private matchRoute(method: string, pathname: string): GatewayOperation | undefined {
    if (this.basePath !== '' && !pathname.startsWith(`${this.basePath}/`)) return undefined;
    const path = pathname.slice(this.basePath.length).replace(/(.)\/+$/, '$1');
    return this.routes.get(`${method} ${path}`);
  }

  private isAuthorized(req: IncomingMessage): boolean {
    const sent = req.headers[this.authHeader];
    const value = Array.isArray(sent) ? sent.join(',') : (sent ?? '');
    return value === this.authValue;
  }
}

function envelopeError(code: number, message: string): { code: number; message: string; success: false; data: null } {
  return { code, message, success: false, data: null };
}

function faultAnswer(status: number, applied: boolean): HandlerResult {
  return { status, body: envelopeError(status, 'simulated fault'), outcome: 'fault', applied };
}

function answer(res: ServerResponse, call: RecordedCall, result: HandlerResult): void {
  call.status = result.status;
  call.outcome = result.outcome;
  call.applied = result.applied;
  // The client may have given up (a slow fault past its timeout); the call still counts as answered.
  if (res.destroyed) return;
  send(res, result.status, result.body);
}

/** Closes the connection without a word: the client sees a reset / "socket hang up". */
function drop(req: IncomingMessage, call: RecordedCall): void {
  call.status = null;
  call.outcome = 'fault';
  req.socket.destroy();
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const isText = typeof body === 'string';
  const text = isText ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': isText ? 'text/html; charset=utf-8' : 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** The whole body as text, or undefined when it is larger than the simulator accepts. */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
