import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HrFeed } from './hr-client.js';
import { encryptHrPayload, wrapInXml } from './hr-crypto.js';
import { generateHrFixture, type HrFixture } from './hr-fixture.js';

/**
 * A stand-in for the HR system (SPEC §7): a real HTTP server (node:http) serving its fixture
 * encrypted with the configured keys at two URLs, optionally XML-wrapped, with switchable faults.
 *
 * Feeds:   GET /hr/employees, GET /hr/departments
 * Control: GET|PUT /__hr/fixture  ({employees?, departments?}: replaces what is given; values are
 *          served as they are, so a test can serve malformed records)
 *          GET|PUT|DELETE /__hr/faults  ({employees?: Fault, departments?: Fault})
 *          PUT /__hr/xml ({enabled}); POST /__hr/reset; GET /__hr/requests
 * A Fault is {kind: 'error' | 'slow' | 'garbage' | 'wrong-key', status?, delayMs?, times?}:
 * `error` answers `status` (default 500); `slow` waits `delayMs` (default 60 s) before answering
 * normally; `garbage` serves text that is not base64; `wrong-key` encrypts with another key.
 * `times` limits the fault to that many requests (default: until cleared).
 */

export type HrFaultKind = 'error' | 'slow' | 'garbage' | 'wrong-key';

export interface HrFault {
  kind: HrFaultKind;
  status?: number;
  delayMs?: number;
  times?: number;
}

export interface HrSimulatorOptions {
  employeesKey: string;
  departmentsKey: string;
  /** Serve the XML-wrapped form (default false). */
  xml?: boolean;
  /** Default: the generated demo organisation. */
  fixture?: { employees: unknown; departments: unknown };
}

const FEED_PATHS: Record<string, HrFeed> = { '/hr/employees': 'employees', '/hr/departments': 'departments' };
const FAULT_KINDS: HrFaultKind[] = ['error', 'slow', 'garbage', 'wrong-key'];
const MAX_BODY_BYTES = 20_000_000;

class ControlError extends Error {}

export class HrSimulator {
  private fixtureData: { employees: unknown; departments: unknown };
  private readonly initialFixture: { employees: unknown; departments: unknown };
  private faultsByFeed: Partial<Record<HrFeed, HrFault>> = {};
  private xml: boolean;
  private readonly initialXml: boolean;
  private requestCounts: Record<HrFeed, number> = { employees: 0, departments: 0 };
  private server: Server | undefined;
  private baseUrl: string | undefined;
  private stopping = new AbortController();

  constructor(private readonly options: HrSimulatorOptions) {
    this.initialFixture = structuredClone(options.fixture ?? generateHrFixture());
    this.fixtureData = structuredClone(this.initialFixture);
    this.xml = options.xml ?? false;
    this.initialXml = this.xml;
  }

  /** Starts listening; port 0 = any free port. Returns the base URL. */
  async start(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((request, response) => {
      this.handle(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500).end('internal error');
        else response.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const address = server.address() as AddressInfo;
    const shownHost = host.includes(':') ? `[${host}]` : host;
    this.baseUrl = `http://${shownHost}:${address.port}`;
    return this.baseUrl;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    if (!this.baseUrl) throw new Error('the HR simulator is not started');
    return this.baseUrl;
  }

  get employeesUrl(): string {
    return `${this.url}/hr/employees`;
  }

  get departmentsUrl(): string {
    return `${this.url}/hr/departments`;
  }

  fixture(): { employees: unknown; departments: unknown } {
    return structuredClone(this.fixtureData);
  }

  /** Replaces the feeds that are given. */
  setFixture(fixture: Partial<HrFixture> | { employees?: unknown; departments?: unknown }): void {
    if (fixture.employees !== undefined) this.fixtureData.employees = structuredClone(fixture.employees);
    if (fixture.departments !== undefined) this.fixtureData.departments = structuredClone(fixture.departments);
  }

  setFault(feed: HrFeed, fault: HrFault): void {
    this.faultsByFeed[feed] = { ...fault };
  }

  faults(): Partial<Record<HrFeed, HrFault>> {
    return structuredClone(this.faultsByFeed);
  }

  clearFaults(): void {
    this.faultsByFeed = {};
  }

  setXml(enabled: boolean): void {
    this.xml = enabled;
  }

  /** Feed requests received (every attempt counts). */
  requests(): Record<HrFeed, number> {
    return { ...this.requestCounts };
  }

  reset(): void {
    this.fixtureData = structuredClone(this.initialFixture);
    this.faultsByFeed = {};
    this.xml = this.initialXml;
    this.requestCounts = { employees: 0, departments: 0 };
  }

  /** What a feed serves now, without faults: the encrypted (maybe wrapped) text. */
  servedText(feed: HrFeed, key = this.keyOf(feed)): string {
    const encrypted = encryptHrPayload(JSON.stringify(this.fixtureData[feed]), key);
    return this.xml ? wrapInXml(encrypted) : encrypted;
  }

  private keyOf(feed: HrFeed): string {
    return feed === 'employees' ? this.options.employeesKey : this.options.departmentsKey;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const feed = FEED_PATHS[path];
    if (feed && request.method === 'GET') return this.serveFeed(feed, response);
    if (path.startsWith('/__hr/')) {
      try {
        return await this.control(request, path, response);
      } catch (error) {
        if (error instanceof ControlError) return sendJson(response, 400, { error: error.message });
        throw error;
      }
    }
    sendJson(response, 404, { error: `no route ${request.method} ${path}` });
  }

  private async serveFeed(feed: HrFeed, response: ServerResponse): Promise<void> {
    this.requestCounts[feed]++;
    const fault = this.takeFault(feed);
    if (fault?.kind === 'slow') {
      await sleep(fault.delayMs ?? 60_000, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      if (response.destroyed) return;
    }
    if (fault?.kind === 'error') {
      response.writeHead(fault.status ?? 500, { 'content-type': 'text/plain' }).end('HR system error');
      return;
    }
    let body: string;
    if (fault?.kind === 'garbage') body = 'this is not a payload <<< !!!';
    else if (fault?.kind === 'wrong-key') body = this.servedText(feed, randomBytes(16).toString('hex'));
    else body = this.servedText(feed);
    response.writeHead(200, { 'content-type': this.xml ? 'text/xml; charset=utf-8' : 'text/plain; charset=utf-8' });
    response.end(body);
  }

  /** The fault for this request, counting down `times`. */
  private takeFault(feed: HrFeed): HrFault | undefined {
    const fault = this.faultsByFeed[feed];
    if (!fault) return undefined;
    if (fault.times !== undefined) {
      fault.times--;
      if (fault.times <= 0) delete this.faultsByFeed[feed];
    }
    return fault;
  }

  private async control(request: IncomingMessage, path: string, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    if (path === '/__hr/fixture') {
      if (method === 'GET') return sendJson(response, 200, this.fixture());
      if (method === 'PUT') {
        const body = asObject(await readJson(request));
        this.setFixture({ employees: body.employees, departments: body.departments });
        return sendJson(response, 200, { ok: true });
      }
    }
    if (path === '/__hr/faults') {
      if (method === 'GET') return sendJson(response, 200, this.faults());
      if (method === 'DELETE') {
        this.clearFaults();
        return sendJson(response, 200, { ok: true });
      }
      if (method === 'PUT') {
        const body = asObject(await readJson(request));
        for (const feed of ['employees', 'departments'] as const) {
          if (body[feed] !== undefined) this.setFault(feed, parseFault(body[feed]));
        }
        return sendJson(response, 200, this.faults());
      }
    }
    if (path === '/__hr/xml' && method === 'PUT') {
      const body = asObject(await readJson(request));
      if (typeof body.enabled !== 'boolean') throw new ControlError('enabled must be true or false');
      this.setXml(body.enabled);
      return sendJson(response, 200, { xml: this.xml });
    }
    if (path === '/__hr/reset' && method === 'POST') {
      this.reset();
      return sendJson(response, 200, { ok: true });
    }
    if (path === '/__hr/requests' && method === 'GET') return sendJson(response, 200, this.requests());
    sendJson(response, 404, { error: `no control route ${method} ${path}` });
  }
}

function parseFault(value: unknown): HrFault {
  const body = asObject(value);
  if (!FAULT_KINDS.includes(body.kind as HrFaultKind)) {
    throw new ControlError(`fault kind must be one of ${FAULT_KINDS.join(', ')}`);
  }
  const fault: HrFault = { kind: body.kind as HrFaultKind };
  for (const name of ['status', 'delayMs', 'times'] as const) {
    const number = body[name];
    if (number === undefined) continue;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < 0) {
      throw new ControlError(`${name} must be a whole number`);
    }
    fault[name] = number;
  }
  if (fault.status !== undefined && (fault.status < 100 || fault.status > 599)) {
    throw new ControlError('status must be an HTTP status');
  }
  return fault;
}

function asObject(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ControlError('expected a JSON object');
  return value as Record<string, unknown>;
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ControlError('body too large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ControlError('body is not JSON');
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** A random key of `bytes` printable bytes (the configured key is a string whose bytes are the AES key). */
export function generateHrKey(bytes: 16 | 24 | 32 = 32): string {
  // base64url of 3/4 as many random bytes has exactly `bytes` ASCII characters.
  return randomBytes((bytes * 3) / 4).toString('base64url');
}

export interface EmbeddedHrSimulator {
  simulator: HrSimulator;
  /** Put these into config.hr. */
  employeesUrl: string;
  departmentsUrl: string;
  employeesKey: string;
  departmentsKey: string;
  stop(): Promise<void>;
}

/**
 * Embedded mode: with HR_SYNC_ENABLED=true and no HR URL, main starts the simulator on a free
 * loopback port with fresh keys and puts the returned URLs and keys into config.hr before startApp.
 * Configured keys are used when present, so a partial configuration keeps what it sets.
 */
export async function startHrSimulatorForEmbedded(config: {
  hr: { employeesKey: string | null; departmentsKey: string | null };
}): Promise<EmbeddedHrSimulator> {
  const employeesKey = config.hr.employeesKey ?? generateHrKey();
  const departmentsKey = config.hr.departmentsKey ?? generateHrKey();
  const simulator = new HrSimulator({ employeesKey, departmentsKey });
  await simulator.start(0, '127.0.0.1');
  return {
    simulator,
    employeesUrl: simulator.employeesUrl,
    departmentsUrl: simulator.departmentsUrl,
    employeesKey,
    departmentsKey,
    stop: () => simulator.stop(),
  };
}
