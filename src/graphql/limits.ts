import type { ApolloServerPlugin } from '@apollo/server';
import {
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import { type ComplexityEstimator, getComplexity, simpleEstimator } from 'graphql-query-complexity';
import type { GraphqlLimits } from '../config.js';
import { ErrorCode } from '../errors.js';

/**
 * Guards against expensive requests (SPEC §11). Token count is capped at parse time (so a document
 * of 10,000 aliases never reaches validation, whose overlap check is quadratic); depth, aliases
 * and root fields are validation rules; complexity needs the variables, so it is checked once the
 * operation is resolved. Introspection fields (`__schema`, `__type`) do not count: GraphiQL's own
 * introspection query is deep by nature and cheap to answer.
 */

function limitError(message: string): GraphQLError {
  // `http.status`: Apollo answers errors thrown from plugins with 500 unless told otherwise.
  return new GraphQLError(message, { extensions: { code: ErrorCode.BAD_USER_INPUT, http: { status: 400 } } });
}

function isIntrospectionField(name: string): boolean {
  return name.startsWith('__');
}

/** Walks selections through fragments, calling `visit` for each field with its depth. */
function walkSelections(
  selectionSet: SelectionSetNode,
  fragments: (name: string) => FragmentDefinitionNode | null | undefined,
  visit: (field: { name: string; alias: string | undefined; depth: number }) => boolean,
  depth: number,
  seenFragments: Set<string>,
): void {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (depth === 1 && isIntrospectionField(selection.name.value)) continue;
      const descend = visit({ name: selection.name.value, alias: selection.alias?.value, depth });
      if (descend && selection.selectionSet) {
        walkSelections(selection.selectionSet, fragments, visit, depth + 1, seenFragments);
      }
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      walkSelections(selection.selectionSet, fragments, visit, depth, seenFragments);
    } else {
      const name = selection.name.value;
      // A fragment spread twice at one level counts once per spread, but never recursively forever.
      if (seenFragments.has(name)) continue;
      const fragment = fragments(name);
      if (!fragment) continue;
      seenFragments.add(name);
      walkSelections(fragment.selectionSet, fragments, visit, depth, seenFragments);
      seenFragments.delete(name);
    }
  }
}

export function operationShapeRule(limits: GraphqlLimits) {
  return function operationShape(context: ValidationContext): ASTVisitor {
    return {
      OperationDefinition(operation: OperationDefinitionNode) {
        let maxDepth = 0;
        let aliases = 0;
        let rootFields = 0;
        let stop = false;
        walkSelections(
          operation.selectionSet,
          (name) => context.getFragment(name),
          ({ alias, depth }) => {
            if (stop) return false;
            maxDepth = Math.max(maxDepth, depth);
            if (alias !== undefined) aliases += 1;
            if (depth === 1) rootFields += 1;
            // Stop walking as soon as any limit is exceeded: the answer is already known.
            stop = maxDepth > limits.maxDepth || aliases > limits.maxAliases || rootFields > limits.maxRootFields;
            return !stop;
          },
          1,
          new Set(),
        );
        if (maxDepth > limits.maxDepth) {
          context.reportError(limitError(`The query is nested deeper than the limit of ${limits.maxDepth} levels.`));
        } else if (aliases > limits.maxAliases) {
          context.reportError(limitError(`The query uses more than ${limits.maxAliases} aliases.`));
        } else if (rootFields > limits.maxRootFields) {
          context.reportError(limitError(`The query asks for more than ${limits.maxRootFields} top-level fields.`));
        }
      },
    };
  };
}

/**
 * A paged field costs its page size times what each item costs; everything else costs 1 plus its
 * children. Introspection is free.
 */
const pagedFieldEstimator: ComplexityEstimator = ({ field, args, childComplexity }) => {
  if (isIntrospectionField(field.name)) return 0;
  const first = args.first;
  if (typeof first === 'number' && first > 0) return 1 + childComplexity * first;
  return undefined;
};

/**
 * The complexity of an operation that declares no variables is a property of the document alone, and
 * Apollo hands every request with the same query text the same validated DocumentNode (its document
 * store), so it is computed once per document and operation name; an operation with variables
 * (`first: $n`, `@include(if: $x)`) is costed per request. Weak keys: documents evicted from Apollo's
 * store are collected with their entries.
 */
const fixedComplexity = new WeakMap<DocumentNode, Map<string, number>>();

function declaresVariables(document: DocumentNode, operationName: string | null | undefined): boolean {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  const operation = operationName
    ? operations.find((candidate) => candidate.name?.value === operationName)
    : operations[0];
  // No such operation: execution refuses the request; do not cache an answer for it.
  return operation === undefined || (operation.variableDefinitions?.length ?? 0) > 0;
}

export function complexityPlugin(limits: GraphqlLimits): ApolloServerPlugin {
  function costOf(
    schema: GraphQLSchema,
    document: DocumentNode,
    operationName: string | undefined,
    variables: Record<string, unknown>,
  ): number | null {
    try {
      return getComplexity({
        schema,
        query: document,
        operationName,
        variables,
        estimators: [pagedFieldEstimator, simpleEstimator({ defaultComplexity: 1 })],
      });
    } catch (error) {
      // Variables that do not fit the operation: execution refuses them with BAD_USER_INPUT
      // before any resolver runs, so there is nothing to cost here (and no bug to report).
      // By name, not instanceof: the library may load graphql's CommonJS build and we its ESM one.
      if (error instanceof Error && error.name === 'GraphQLError') return null;
      throw error;
    }
  }

  function complexityOf(
    schema: GraphQLSchema,
    document: DocumentNode,
    operationName: string | undefined,
    variables: Record<string, unknown>,
  ): number | null {
    if (declaresVariables(document, operationName)) return costOf(schema, document, operationName, variables);
    let byOperation = fixedComplexity.get(document);
    const known = byOperation?.get(operationName ?? '');
    if (known !== undefined) return known;
    const complexity = costOf(schema, document, operationName, {});
    if (complexity === null) return null;
    if (!byOperation) {
      byOperation = new Map();
      fixedComplexity.set(document, byOperation);
    }
    byOperation.set(operationName ?? '', complexity);
    return complexity;
  }

  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, schema }) {
          const complexity = complexityOf(
            schema,
            document,
            request.operationName ?? undefined,
            request.variables ?? {},
          );
          if (complexity !== null && complexity > limits.maxComplexity) {
            throw limitError(
              `The query is too expensive: complexity ${complexity} exceeds the limit of ${limits.maxComplexity}.`,
            );
          }
        },
      };
    },
  };
}

/** Tokens per document: bounds parse and validation work before anything else runs. */
export const MAX_DOCUMENT_TOKENS = 5_000;
