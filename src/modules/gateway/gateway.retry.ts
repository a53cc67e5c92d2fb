/**
 * The retry policy of the gateway client, as plain functions so it can be read and tested on its own.
 *
 * Two questions are asked of every failed attempt: is the failure transient (worth another try), and
 * may the gateway have processed the request anyway? Reads and absolute writes (set total = X) are
 * safe to repeat, so only the first question matters for them. A delta (add X) that already arrived
 * would be applied twice by a retry, so a delta is retried only when it certainly did not arrive.
 */

export type OperationKind = 'read' | 'absolute-write' | 'delta';

export interface FailureClass {
  retryable: boolean;
  /** The request may have reached the gateway and been applied; we just never saw the answer. */
  mayHaveApplied: boolean;
}

/** No connection was ever made: nothing was sent, so nothing can have been applied. */
const NEVER_CONNECTED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRINUSE']);

/** Transport failures worth another attempt (the set got itself retries by default). */
const TRANSIENT_CODES = new Set([
  ...NEVER_CONNECTED_CODES,
  'ETIMEDOUT',
  'ECONNRESET',
  'EPIPE',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
]);

/**
 * An HTTP answer. 5xx and 429 are transient (SPEC §8 retries them). A 429 is a rate limit, answered
 * before the request is processed. A 5xx may come after the work was done: a proxy that lost the
 * upstream answer (502, 504), and Higress itself is Envoy, which answers 503 when its upstream resets
 * mid-request; a handler can fail after its counter moved. So a 5xx may have applied the request: an
 * absolute write is retried all the same, a delta is not (it would apply twice).
 */
export function classifyStatus(status: number): FailureClass {
  if (status === 429) return { retryable: true, mayHaveApplied: false };
  if (status >= 500 && status <= 599) return { retryable: true, mayHaveApplied: true };
  return { retryable: false, mayHaveApplied: false };
}

/**
 * A failure without an HTTP answer. `connected` is whether a TCP connection to the gateway was
 * established for this attempt (undefined = unknown). Once connected the request may have been
 * written and processed, whatever ended the attempt (a timeout, a reset, a hang-up).
 */
export function classifyTransportFailure(code: string | undefined, connected: boolean | undefined): FailureClass {
  const retryable = code !== undefined && TRANSIENT_CODES.has(code);
  if (code !== undefined && NEVER_CONNECTED_CODES.has(code)) return { retryable, mayHaveApplied: false };
  return { retryable, mayHaveApplied: connected !== false };
}

/** attemptsMade counts the attempt that just failed; maxRetries is the number of retries after the first. */
export function shouldRetry(
  kind: OperationKind,
  failure: FailureClass,
  attemptsMade: number,
  maxRetries: number,
): boolean {
  if (!failure.retryable || attemptsMade > maxRetries) return false;
  return !(kind === 'delta' && failure.mayHaveApplied);
}

/** Back-off never grows beyond this, whatever the configured base and retry count. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * Exponential back-off: base, 2×base, 4×base… for retry 1, 2, 3…, plus up to half as much again of
 * random jitter so that many clients failing together do not retry together.
 */
export function backoffDelayMs(retryNumber: number, baseDelayMs: number, random: () => number = Math.random): number {
  const exponential = baseDelayMs * 2 ** Math.max(0, retryNumber - 1);
  const jitter = (exponential / 2) * random();
  return Math.min(MAX_BACKOFF_MS, Math.round(exponential + jitter));
}
