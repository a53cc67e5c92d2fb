/**
 * The one error type domain code throws. Its `code` is what clients see in `extensions.code`;
 * the mapping to GraphQL happens in exactly one place (src/graphql/error-formatter.ts).
 * Anything that is not a DomainError is treated as a bug: logged with an id, answered as
 * INTERNAL_SERVER_ERROR without details.
 */
export enum ErrorCode {
  BAD_USER_INPUT = 'BAD_USER_INPUT',
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  FORBIDDEN = 'FORBIDDEN',
  NOT_FOUND = 'NOT_FOUND',
  CONFLICT = 'CONFLICT',
  INVALID_CONDITION = 'INVALID_CONDITION',
  INVALID_CRON = 'INVALID_CRON',
  USER_NOT_FOUND = 'USER_NOT_FOUND',
  DEPARTMENT_NOT_FOUND = 'DEPARTMENT_NOT_FOUND',
  QUOTA_NOT_FOUND = 'QUOTA_NOT_FOUND',
  INSUFFICIENT_QUOTA = 'INSUFFICIENT_QUOTA',
  VOUCHER_INVALID = 'VOUCHER_INVALID',
  VOUCHER_NOT_FOR_USER = 'VOUCHER_NOT_FOR_USER',
  GATEWAY_UNAVAILABLE = 'GATEWAY_UNAVAILABLE',
  HR_SYNC_FAILED = 'HR_SYNC_FAILED',
  INTERNAL_SERVER_ERROR = 'INTERNAL_SERVER_ERROR',
}

/** Extra, client-safe facts about an error (e.g. the `position` of a condition error). */
export type ErrorExtensions = Record<string, string | number | boolean | null>;

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: ErrorExtensions = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainError';
  }
}

/** Shorthand for the most common refusal. */
export function badInput(message: string, extensions: ErrorExtensions = {}): DomainError {
  return new DomainError(ErrorCode.BAD_USER_INPUT, message, extensions);
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
