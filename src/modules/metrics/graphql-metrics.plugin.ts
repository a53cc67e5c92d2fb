import type { ApolloServerPlugin } from '@apollo/server';
import { type DocumentNode, Kind, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import type { Metrics } from './metrics.js';

/**
 * graphql_requests_total{operation, outcome} and graphql_request_duration_seconds{operation}.
 *
 * `operation` is the root field the request asked for (`health`, `myQuota`, `transferOut`), not the
 * client's operation name: names are free text any caller can vary, and every distinct label value is
 * a new time series kept for the life of the process. Root fields come from the schema, so the label
 * is bounded. A request with several different root fields is `multiple`; one that never reached a
 * valid operation (a syntax or validation error, a limit) is `invalid`.
 *
 * `outcome` is `ok`, or the `extensions.code` of the first error as the client received it (after the
 * error formatter, so always one of the contract's codes).
 */

export const INVALID_OPERATION = 'invalid';
export const MULTIPLE_OPERATIONS = 'multiple';

export function graphqlMetricsPlugin(metrics: Metrics): ApolloServerPlugin {
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async willSendResponse({ operation, document, response }) {
          const label = operation && document ? rootFieldLabel(operation, document) : INVALID_OPERATION;
          const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          const code = errors?.[0]?.extensions?.code;
          const outcome =
            errors && errors.length > 0 ? (typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR') : 'ok';
          metrics.recordGraphqlRequest(label, outcome, performance.now() - started);
        },
      };
    },
  };
}

/** The one root field name of the operation (fragments at the root followed), or `multiple`. */
export function rootFieldLabel(operation: OperationDefinitionNode, document: DocumentNode): string {
  const fragments = new Map<string, SelectionSetNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition.selectionSet);
  }
  const names = new Set<string>();
  const visited = new Set<string>();
  const collect = (selectionSet: SelectionSetNode) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) names.add(selection.name.value);
      else if (selection.kind === Kind.INLINE_FRAGMENT) collect(selection.selectionSet);
      else if (!visited.has(selection.name.value)) {
        visited.add(selection.name.value);
        const fragment = fragments.get(selection.name.value);
        if (fragment) collect(fragment);
      }
    }
  };
  collect(operation.selectionSet);
  // `__typename` beside real fields (some clients add it everywhere) says nothing about the request.
  if (names.size > 1) names.delete('__typename');
  if (names.size === 1) return [...names][0]!;
  return names.size === 0 ? INVALID_OPERATION : MULTIPLE_OPERATIONS;
}
