import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { type Got, RequestError, TimeoutError } from 'got';
import type { GatewayConfig } from '../../config.js';
import { badInput } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToDecimalString } from '../../money.js';
import { GatewayError } from './gateway.errors.js';
import type { GatewayOperation } from './gateway.operations.js';
import {
  parseReply,
  ReplyShapeError,
  readEnabled,
  readModels,
  readQuota,
  readStarredProjects,
} from './gateway.reply.js';
import {
  backoffDelayMs,
  classifyStatus,
  classifyTransportFailure,
  type FailureClass,
  type OperationKind,
  shouldRetry,
} from './gateway.retry.js';

/** A GatewayConfig whose URL is known (the embedded simulator's, or AIGATEWAY_URL). */
export interface GatewayClientConfig extends Omit<GatewayConfig, 'url'> {
  baseUrl: string;
}

export type GatewayCallOutcome = 'ok' | 'error';

export interface GatewayClientOptions {
  /** Called once per operation (after its retries) — the metrics hook. Must not throw. */
  onCall?(operation: string, outcome: GatewayCallOutcome, durationMs: number): void;
  /** Source of back-off jitter in [0, 1); tests may pin it. */
  random?: () => number;
}

/** The probe reads the total of an id no real user has: cheap, harmless, always answerable. */
export const PROBE_USER_ID = '__health_probe__';

/** Longest piece of a gateway's own message we repeat in an error. */
const MAX_GATEWAY_MESSAGE_CHARS = 200;

interface GatewayCall<T> {
  operation: GatewayOperation | 'probe';
  kind: OperationKind;
  method: 'GET' | 'POST';
  /** Relative to the base URL, without a leading slash (got's prefixUrl rule). */
  path: string;
  query?: Record<string, string>;
  form?: Record<string, string>;
  read: (data: unknown) => T;
  /** Overrides the configured retry count (the probe does not retry). */
  retries?: number;
}

interface FailedAttempt extends FailureClass {
  /** Short and safe for API clients: no URL, no key, no stack. */
  reason: string;
  /** Longer, for the error's cause and logs; still free of credentials. */
  detail: string;
  status?: number;
  code?: string;
}

type AttemptResult<T> = { ok: true; value: T } | { ok: false; failure: FailedAttempt };

const ignoreData = (): void => undefined;

/**
 * The AI gateway's admin API (SPEC §8) over HTTP. Every operation is one logical call: up to
 * `retries` + 1 attempts, each bounded by `timeoutMs`, with the retry policy of gateway.retry.ts.
 * Failures surface as GatewayError (code GATEWAY_UNAVAILABLE) carrying `attempts` and `ambiguous`.
 */
export class GatewayClient {
  private readonly http: Got;
  private readonly logger: Logger;
  private readonly adminPath: string;
  private readonly httpAgent = new HttpAgent({ keepAlive: true });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true });
  private readonly random: () => number;
  private readonly onCall: GatewayClientOptions['onCall'];
  private reachable = false;

  constructor(
    private readonly config: GatewayClientConfig,
    logger: Logger,
    options: GatewayClientOptions = {},
  ) {
    // The caller names the component (app.ts passes a child logger); binding it again would duplicate the key.
    this.logger = logger;
    this.random = options.random ?? Math.random;
    this.onCall = options.onCall;
    this.adminPath = trimSlashes(config.adminPath);
    this.http = got.extend({
      // A trailing slash keeps a path prefix of the base URL (http://host/prefix) in every request.
      prefixUrl: `${config.baseUrl.replace(/\/+$/, '')}/`,
      headers: { [config.authHeader]: config.authValue, accept: 'application/json', 'user-agent': 'quota-manager' },
      timeout: { request: config.timeoutMs },
      // The retry loop is ours (below), so the policy for deltas is explicit.
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      responseType: 'text',
      agent: { http: this.httpAgent, https: this.httpsAgent },
    });
  }

  /**
   * Whether the gateway answered the most recent call or probe that ended — a refusal it sent (4xx,
   * `success: false`) counts, since it says nothing about reachability; no answer, a 5xx, or a 401/403
   * (our admin key is refused: every call will fail) does not. What the `health` query reports.
   * False before any call.
   */
  get lastProbeOk(): boolean {
    return this.reachable;
  }

  async getTotal(userId: string): Promise<Cents> {
    return this.call(this.totalRead('getTotal', userId));
  }

  async setTotal(userId: string, cents: Cents): Promise<void> {
    return this.write('setTotal', 'absolute-write', this.adminRoute('refresh'), {
      user_id: userId,
      quota: centsToDecimalString(cents),
    });
  }

  async addTotal(userId: string, deltaCents: Cents): Promise<void> {
    return this.write('addTotal', 'delta', this.adminRoute('delta'), {
      user_id: userId,
      value: centsToDecimalString(deltaCents),
    });
  }

  async getUsed(userId: string): Promise<Cents> {
    return this.read('getUsed', this.adminRoute('used'), { user_id: userId }, readQuota);
  }

  async setUsed(userId: string, cents: Cents): Promise<void> {
    return this.write('setUsed', 'absolute-write', this.adminRoute('used/refresh'), {
      user_id: userId,
      quota: centsToDecimalString(cents),
    });
  }

  async addUsed(userId: string, deltaCents: Cents): Promise<void> {
    return this.write('addUsed', 'delta', this.adminRoute('used/delta'), {
      user_id: userId,
      value: centsToDecimalString(deltaCents),
    });
  }

  async getStarredProjects(employeeNumber: string): Promise<string[]> {
    const path = this.adminRoute('star/projects/query');
    return this.read('getStarredProjects', path, { employee_number: employeeNumber }, readStarredProjects);
  }

  async setStarredProjects(employeeNumber: string, projects: string[]): Promise<void> {
    // The gateway stores one CSV string; a comma inside a name would split it in two.
    if (projects.some((project) => project.includes(','))) throw badInput('a starred project name cannot contain ","');
    return this.write('setStarredProjects', 'absolute-write', this.adminRoute('star/projects/set'), {
      employee_number: employeeNumber,
      starred_projects: projects.join(','),
    });
  }

  async getModels(employeeNumber: string): Promise<string[]> {
    return this.read('getModels', 'model-permission', { employee_number: employeeNumber }, readModels);
  }

  async setModels(employeeNumber: string, models: string[]): Promise<void> {
    return this.write('setModels', 'absolute-write', 'model-permission/set', {
      employee_number: employeeNumber,
      models: JSON.stringify(models),
    });
  }

  async getStarCheck(employeeNumber: string): Promise<boolean> {
    return this.read('getStarCheck', 'check-star', { employee_number: employeeNumber }, readEnabled);
  }

  async setStarCheck(employeeNumber: string, enabled: boolean): Promise<void> {
    return this.write('setStarCheck', 'absolute-write', 'check-star/set', {
      employee_number: employeeNumber,
      enabled: String(enabled),
    });
  }

  async getQuotaCheck(employeeNumber: string): Promise<boolean> {
    return this.read('getQuotaCheck', 'check-quota', { employee_number: employeeNumber }, readEnabled);
  }

  async setQuotaCheck(employeeNumber: string, enabled: boolean): Promise<void> {
    return this.write('setQuotaCheck', 'absolute-write', 'check-quota/set', {
      employee_number: employeeNumber,
      enabled: String(enabled),
    });
  }

  /** One attempt, no retries; true when the gateway answered properly. Never throws. */
  async probe(): Promise<boolean> {
    try {
      await this.call({ ...this.totalRead('probe', PROBE_USER_ID), retries: 0 });
      return true;
    } catch {
      return false;
    }
  }

  /** Closes idle keep-alive connections (at shutdown). */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private totalRead(operation: 'getTotal' | 'probe', userId: string): GatewayCall<Cents> {
    return {
      operation,
      kind: 'read',
      method: 'GET',
      path: this.adminRoute(),
      query: { user_id: userId },
      read: readQuota,
    };
  }

  private read<T>(
    operation: GatewayOperation,
    path: string,
    query: Record<string, string>,
    read: (data: unknown) => T,
  ): Promise<T> {
    return this.call({ operation, kind: 'read', method: 'GET', path, query, read });
  }

  private write(
    operation: GatewayOperation,
    kind: OperationKind,
    path: string,
    form: Record<string, string>,
  ): Promise<void> {
    return this.call({ operation, kind, method: 'POST', path, form, read: ignoreData });
  }

  /** Quota routes live under the admin path; permission routes sit at the gateway root. */
  private adminRoute(suffix = ''): string {
    return [this.adminPath, suffix].filter((part) => part !== '').join('/');
  }

  private async call<T>(call: GatewayCall<T>): Promise<T> {
    const started = performance.now();
    const maxRetries = call.retries ?? this.config.retries;
    let ambiguous = false;
    for (let attempt = 1; ; attempt++) {
      const result = await this.attempt(call);
      if (result.ok) {
        this.finish(call, 'ok', started, true);
        return result.value;
      }
      const { failure } = result;
      // A read changes nothing, so only a write can be left in doubt.
      if (call.kind !== 'read' && failure.mayHaveApplied) ambiguous = true;
      const retrying = shouldRetry(call.kind, failure, attempt, maxRetries);
      this.logger.warn(
        { operation: call.operation, attempt, status: failure.status, code: failure.code, retrying, ambiguous },
        'AI gateway call failed',
      );
      if (!retrying) {
        this.finish(call, 'error', started, answeredUsably(failure.status));
        const after = attempt > 1 ? ` (after ${attempt} attempts)` : '';
        throw new GatewayError(
          `AI gateway ${call.operation} failed: ${failure.reason}${after}`,
          { attempts: attempt, ambiguous, status: failure.status },
          { cause: attemptCause(failure) },
        );
      }
      await sleep(backoffDelayMs(attempt, this.config.retryBaseDelayMs, this.random));
    }
  }

  private async attempt<T>(call: GatewayCall<T>): Promise<AttemptResult<T>> {
    let status: number;
    let body: string;
    try {
      const response = await this.http(call.path, {
        method: call.method,
        searchParams: call.query,
        form: call.form,
      });
      status = response.statusCode;
      body = response.body;
    } catch (error) {
      return { ok: false, failure: this.transportFailure(error) };
    }
    return this.interpret(call, status, body);
  }

  private interpret<T>(call: GatewayCall<T>, status: number, body: string): AttemptResult<T> {
    const reply = parseReply(body);
    if (status < 200 || status > 299) {
      const said = reply?.message ? `: ${this.quoteGateway(reply.message)}` : '';
      const reason = `HTTP ${status}${said}`;
      return { ok: false, failure: { ...classifyStatus(status), reason, detail: reason, status } };
    }
    if (reply === undefined) {
      const reason = `unreadable reply (HTTP ${status}, not a JSON envelope)`;
      // A write answered 2xx was probably applied; we just cannot read the confirmation.
      const failure = { retryable: false, mayHaveApplied: call.kind !== 'read', reason, detail: reason, status };
      return { ok: false, failure };
    }
    if (!reply.success) {
      const code = typeof reply.code === 'number' || typeof reply.code === 'string' ? ` (code ${reply.code})` : '';
      const said = reply.message ? `: ${this.quoteGateway(reply.message)}` : '';
      const reason = `gateway refused${code}${said}`;
      return { ok: false, failure: { retryable: false, mayHaveApplied: false, reason, detail: reason, status } };
    }
    try {
      return { ok: true, value: call.read(reply.data) };
    } catch (error) {
      if (!(error instanceof ReplyShapeError)) throw error;
      const reason = `unexpected reply: ${error.message}`;
      return { ok: false, failure: { retryable: false, mayHaveApplied: false, reason, detail: reason, status } };
    }
  }

  private transportFailure(error: unknown): FailedAttempt {
    if (!(error instanceof RequestError)) {
      const detail = error instanceof Error ? error.message : String(error);
      return { retryable: false, mayHaveApplied: false, reason: 'request could not be made', detail };
    }
    const { code } = error;
    // No TCP connection means nothing was sent. Reused keep-alive sockets count as connected.
    const connected = error.timings === undefined ? undefined : error.timings.connect !== undefined;
    return {
      ...classifyTransportFailure(code, connected),
      reason: this.describeTransport(error),
      detail: redactCredentials(error.message),
      code,
    };
  }

  private describeTransport(error: RequestError): string {
    if (error instanceof TimeoutError) return `no answer within ${this.config.timeoutMs} ms`;
    switch (error.code) {
      case 'ECONNREFUSED':
        return 'connection refused';
      case 'ECONNRESET':
        return 'connection closed before an answer';
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return 'gateway host not found';
      default:
        return `connection failed (${error.code})`;
    }
  }

  /** The gateway's words, shortened, on one line, and never echoing our key back. */
  private quoteGateway(message: string): string {
    let text = message.replace(/\p{Cc}+/gu, ' ').trim();
    if (this.config.authValue !== '') text = text.split(this.config.authValue).join('[redacted]');
    if (text.length > MAX_GATEWAY_MESSAGE_CHARS) text = `${text.slice(0, MAX_GATEWAY_MESSAGE_CHARS)}…`;
    return JSON.stringify(text);
  }

  private finish(call: GatewayCall<unknown>, outcome: GatewayCallOutcome, started: number, answered: boolean): void {
    this.reachable = answered;
    try {
      this.onCall?.(call.operation, outcome, performance.now() - started);
    } catch {
      // Metrics must never turn a gateway success into a failure.
    }
  }
}

/**
 * Whether a failed call still shows a gateway this client can use: it answered, and neither with a 5xx
 * (down or failing) nor with 401/403 — the admin key is wrong or missing, so nothing we send will work,
 * a misconfiguration /health must show rather than report the gateway as up.
 */
function answeredUsably(status: number | undefined): boolean {
  return status !== undefined && status < 500 && status !== 401 && status !== 403;
}

/** got's own errors carry the request options (with the admin header), so the cause is a clean copy. */
function attemptCause(failure: FailedAttempt): Error {
  const cause = new Error(failure.detail);
  cause.name = 'GatewayAttemptFailure';
  return Object.assign(cause, { code: failure.code, status: failure.status });
}

function redactCredentials(text: string): string {
  return text.replace(/\/\/[^@/\s]*@/g, '//***@');
}

function trimSlashes(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}
