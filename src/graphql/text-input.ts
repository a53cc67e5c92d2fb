import type { ApolloServerPlugin } from '@apollo/server';
import { type DocumentNode, GraphQLError, visit } from 'graphql';
import { ErrorCode } from '../errors.js';

/**
 * Text PostgreSQL cannot store as sent is refused before anything runs (SPEC §11: bad input gets a
 * clear error and changes nothing):
 * - NUL (U+0000): text columns refuse it, so the query failed and the client got an
 *   INTERNAL_SERVER_ERROR (any argument that reached SQL: user ids, names, filters, references);
 * - a lone UTF-16 surrogate (JSON allows `"\ud800"`): the driver encodes it as U+FFFD, so the value
 *   stored or looked up is silently another one.
 * One check per request over every string literal of the document and every string in the
 * variables covers every argument of every operation, including ones added later. Other control
 * characters are legal text here; fields that must not hold them say so themselves.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored as sent, or null when it can. */
export function unstorableText(value: string): string | null {
  if (value.includes('\u0000')) return 'a NUL character (U+0000)';
  if (LONE_SURROGATE.test(value)) return 'an unpaired UTF-16 surrogate (not valid Unicode)';
  return null;
}

function refusal(message: string): GraphQLError {
  // `http.status`: Apollo answers errors thrown from plugins with 500 unless told otherwise.
  return new GraphQLError(message, { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } });
}

function checkDocument(document: DocumentNode): void {
  visit(document, {
    StringValue(node) {
      const problem = unstorableText(node.value);
      if (problem) {
        const where = node.loc ? ` at line ${node.loc.startToken.line}, column ${node.loc.startToken.column}` : '';
        throw refusal(`A string in the query${where} contains ${problem}.`);
      }
    },
  });
}

/** Walks the variables iteratively: their nesting depth is the client's choice. */
function checkVariables(variables: Record<string, unknown>): void {
  const pending: [unknown, string][] = Object.entries(variables).map(([name, value]) => [value, `$${name}`]);
  while (pending.length > 0) {
    const [value, path] = pending.pop()!;
    if (typeof value === 'string') {
      const problem = unstorableText(value);
      if (problem) throw refusal(`Variable ${path} contains ${problem}.`);
    } else if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) pending.push([item, `${path}[${index}]`]);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) pending.push([item, `${path}.${key}`]);
    }
  }
}

export function textInputPlugin(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          checkDocument(document);
          checkVariables(request.variables ?? {});
        },
      };
    },
  };
}
