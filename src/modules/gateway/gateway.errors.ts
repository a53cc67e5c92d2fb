import { DomainError, ErrorCode } from '../../errors.js';

/**
 * A gateway call that failed after its retries. Callers that write deltas read `ambiguous`: true means
 * the gateway may have applied the change although we never saw its answer, so the caller must not
 * simply repeat it (SPEC §8). `attempts` and `status` are for logs and tests; none of the three reach
 * API clients, which see only GATEWAY_UNAVAILABLE and the message.
 */
export class GatewayError extends DomainError {
  readonly attempts: number;
  readonly ambiguous: boolean;
  readonly status: number | undefined;

  constructor(
    message: string,
    details: { attempts: number; ambiguous: boolean; status?: number },
    options?: { cause?: unknown },
  ) {
    super(ErrorCode.GATEWAY_UNAVAILABLE, message, {}, options);
    this.name = 'GatewayError';
    this.attempts = details.attempts;
    this.ambiguous = details.ambiguous;
    this.status = details.status;
  }
}

export function isGatewayError(error: unknown): error is GatewayError {
  return error instanceof GatewayError;
}
