import { randomUUID } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloServerErrorCode, unwrapResolverError } from '@apollo/server/errors';
import type { GraphQLFormattedError } from 'graphql';
import { GraphQLError } from 'graphql';
import { DomainError, ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RequestContext } from './context.js';

/**
 * The one place where errors become GraphQL errors (`extensions.code`). Domain errors keep their
 * code and safe extensions; GraphQL's own request errors (parse, validation, variable coercion) are
 * BAD_USER_INPUT with the original code kept in `extensions.graphqlCode`; anything else is a bug:
 * logged with an errorId and answered as INTERNAL_SERVER_ERROR with only that id.
 */

const REQUEST_ERROR_CODES = new Set<string>([
  ApolloServerErrorCode.GRAPHQL_PARSE_FAILED,
  ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED,
  ApolloServerErrorCode.BAD_USER_INPUT,
  ApolloServerErrorCode.BAD_REQUEST,
  ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_FOUND,
  ApolloServerErrorCode.PERSISTED_QUERY_NOT_SUPPORTED,
]);

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * graphql-js parses recursively: a document within the token limit but nested ~2,000 levels deep
 * overflows the stack, and the parse error's message would be "Maximum call stack size exceeded".
 */
const TOO_DEEP_TO_PARSE = 'The query is nested too deeply to parse; send a flatter document.';

function ranOutOfStack(error: unknown): boolean {
  // Apollo wraps the parser's RangeError in a GraphQLError, which it wraps again.
  let cause: unknown = error;
  for (let level = 0; level < 4 && typeof cause === 'object' && cause !== null; level++) {
    if (cause instanceof RangeError) return true;
    cause = (cause as { originalError?: unknown }).originalError;
  }
  return false;
}

/**
 * Apollo's formatError sees the error but not the request, so the request's logger (which carries
 * requestId and userId) is remembered per error by the plugin below, which Apollo runs first.
 */
const requestLoggers = new WeakMap<object, Logger>();

export function errorContextPlugin(): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue }) {
          for (const error of errors) requestLoggers.set(error, contextValue.logger);
        },
      };
    },
  };
}

export function createErrorFormatter(logger: Logger) {
  return function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
    const original = unwrapResolverError(error);
    const location = { locations: formatted.locations, path: formatted.path };

    if (original instanceof DomainError) {
      return { message: original.message, ...location, extensions: { ...original.extensions, code: original.code } };
    }

    const code = formatted.extensions?.code;
    if (typeof code === 'string' && REQUEST_ERROR_CODES.has(code)) {
      return {
        message: ranOutOfStack(error) ? TOO_DEEP_TO_PARSE : formatted.message,
        ...location,
        extensions: { code: ErrorCode.BAD_USER_INPUT, graphqlCode: code },
      };
    }
    // Errors we raised ourselves as GraphQLError with one of our codes (limits, guards).
    if (
      original instanceof GraphQLError &&
      typeof code === 'string' &&
      KNOWN_CODES.has(code) &&
      code !== 'INTERNAL_SERVER_ERROR'
    ) {
      return { message: formatted.message, ...location, extensions: { code } };
    }

    const errorId = randomUUID();
    const requestLogger = (typeof error === 'object' && error !== null && requestLoggers.get(error)) || logger;
    requestLogger.error({ errorId, err: original, path: formatted.path }, 'unexpected error while answering a request');
    return {
      message: `Internal server error (errorId ${errorId})`,
      ...location,
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR, errorId },
    };
  };
}
