import { DomainError, ErrorCode } from '../../../errors.js';

/** Longest expression accepted, in characters (UTF-16 code units, the unit of every position). */
export const MAX_CONDITION_LENGTH = 4000;

/** Deepest nesting accepted: every call, parenthesised group and prefix `not` is one level. */
export const MAX_CONDITION_DEPTH = 32;

/**
 * Why an expression is not a valid condition (SPEC §3): a message that names what is wrong and the
 * 0-based character offset where it is. The message repeats the position so that it reads on its own
 * in logs; `position` is the machine-readable copy (GraphQL `ConditionError.position`).
 */
export class ConditionError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = 'ConditionError';
  }
}

/** Builds a ConditionError whose message ends with "at position N". */
export function conditionError(problem: string, position: number): ConditionError {
  return new ConditionError(`${problem} at position ${position}`, position);
}

/** The refusal the API answers for an invalid condition: INVALID_CONDITION with `position` in extensions. */
export function invalidConditionError(error: ConditionError): DomainError {
  return new DomainError(ErrorCode.INVALID_CONDITION, error.message, { position: error.position });
}
