import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { type Got, RequestError, TimeoutError } from 'got';
import type { Logger } from '../../logger.js';

/**
 * Reads the HR system's two feeds over HTTP (SPEC §7): each request bounded by the timeout
 * (HR_TIMEOUT_MS, default 30 s); 5xx, 429 and transport failures retried with exponential back-off
 * and jitter; other answers are final. GETs only, so repeating one is always safe.
 */

export type HrFeed = 'employees' | 'departments';

export interface HrClientOptions {
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries?: number;
  /** First back-off; doubled per retry, plus up to half again of jitter. */
  retryBaseDelayMs?: number;
}

/** The feed could not be read. The message is safe to show: no URL (it may carry credentials), no body. */
export class HrUnavailableError extends Error {
  constructor(
    readonly feed: HrFeed,
    readonly reason: string,
    readonly attempts: number,
  ) {
    super(`the ${feed} feed could not be read: ${reason} (${attempts} attempt${attempts === 1 ? '' : 's'})`);
    this.name = 'HrUnavailableError';
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
]);

const MAX_BACKOFF_MS = 30_000;

export class HrClient {
  private readonly http: Got;
  private readonly httpAgent = new HttpAgent({ keepAlive: true });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true });
  private readonly retries: number;
  private readonly retryBaseDelayMs: number;

  constructor(
    private readonly options: HrClientOptions,
    private readonly logger: Logger,
  ) {
    this.retries = options.retries ?? 3;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 1000;
    this.http = got.extend({
      timeout: { request: options.timeoutMs },
      retry: { limit: 0 },
      throwHttpErrors: false,
      responseType: 'text',
      headers: { 'user-agent': 'quota-manager', accept: 'text/plain, application/xml, application/json, */*' },
      agent: { http: this.httpAgent, https: this.httpsAgent },
    });
  }

  /** The body of one feed, as served (still encrypted, maybe XML-wrapped). */
  async fetchFeed(feed: HrFeed, url: string, signal?: AbortSignal): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(url, signal);
      if (outcome.ok) return outcome.body;
      const retrying = outcome.retryable && attempt <= this.retries && !signal?.aborted;
      this.logger.warn({ feed, attempt, reason: outcome.reason, retrying }, 'HR feed request failed');
      if (!retrying) throw new HrUnavailableError(feed, outcome.reason, attempt);
      await sleep(this.backoff(attempt), undefined, { signal }).catch(() => undefined);
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private backoff(retryNumber: number): number {
    const exponential = this.retryBaseDelayMs * 2 ** (retryNumber - 1);
    return Math.min(MAX_BACKOFF_MS, Math.round(exponential + (exponential / 2) * Math.random()));
  }

  private async attempt(
    url: string,
    signal: AbortSignal | undefined,
  ): Promise<{ ok: true; body: string } | { ok: false; retryable: boolean; reason: string }> {
    try {
      const response = await this.http.get(url, { signal });
      const status = response.statusCode;
      if (status >= 200 && status < 300) return { ok: true, body: response.body };
      return { ok: false, retryable: status === 429 || status >= 500, reason: `HTTP ${status}` };
    } catch (error) {
      if (error instanceof TimeoutError) {
        return { ok: false, retryable: true, reason: `no answer within ${this.options.timeoutMs} ms` };
      }
      if (error instanceof RequestError) {
        const code = error.code;
        return { ok: false, retryable: TRANSIENT_CODES.has(code), reason: `connection failed (${code})` };
      }
      return { ok: false, retryable: false, reason: 'the request could not be made' };
    }
  }
}
