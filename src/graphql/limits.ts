import type { ApolloServerPlugin } from '@apollo/server';
import {
  type ASTVisitor,
  type DocumentNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import { type ComplexityEstimator, getComplexity, simpleEstimator } from 'graphql-query-complexity';
import type { GraphqlLimits } from '../config.js';
import { ErrorCode } from '../errors.js';
import { DEFAULT_PAGE_SIZE } from './pagination.js';

/**
 * Guards against expensive requests (SPEC §11). Token count is capped at parse time (so a document
 * of 10,000 aliases never reaches validation, whose overlap check is quadratic); depth, aliases,
 * root fields and the size of the fragments' expansion are validation rules; complexity needs the variables, so it is checked once the
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

/**
 * Fields a document may ask for once its fragments are expanded (each spread counted). A chain of
 * fragments each spreading the next twice stays shallow and short while its expansion doubles with
 * every link; graphql-js merges such fields when it executes, but the complexity count walks every
 * spread, so without this cap a request of 1 KB would hold the event loop for minutes.
 */
export const MAX_EXPANDED_FIELDS = 10_000;

/** What a selection set asks for, fragments expanded: the figures the shape limits need. */
interface SelectionShape {
  /** Levels of fields below and including this one (0 for an empty set). */
  depth: number;
  aliases: number;
  /** Fields at this level (through fragments and inline fragments): root fields, at the root. */
  fieldsHere: number;
  /** Every field at any level, introspection included: what a walk over the expansion visits. */
  expandedFields: number;
}

const NO_SHAPE: SelectionShape = { depth: 0, aliases: 0, fieldsHere: 0, expandedFields: 0 };

/**
 * Measures selection sets, each fragment once per place kind (root or not) however often it is
 * spread, so the work is linear in the document even when its expansion is exponential. Sums may grow
 * past any limit (even to Infinity); they are only compared with the limits.
 */
class ShapeMeter {
  private readonly fragmentShapes = new Map<string, SelectionShape>();
  private readonly measuring = new Set<string>();

  constructor(private readonly fragments: (name: string) => FragmentDefinitionNode | null | undefined) {}

  /** At the root, introspection fields (`__schema`, `__type`) count only towards the expansion. */
  measure(selectionSet: SelectionSetNode, atRoot: boolean): SelectionShape {
    const shape = { ...NO_SHAPE };
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const below = selection.selectionSet ? this.measure(selection.selectionSet, false) : NO_SHAPE;
        shape.expandedFields += 1 + below.expandedFields;
        if (atRoot && isIntrospectionField(selection.name.value)) continue;
        shape.depth = Math.max(shape.depth, 1 + below.depth);
        shape.aliases += (selection.alias ? 1 : 0) + below.aliases;
        shape.fieldsHere += 1;
      } else {
        const inner =
          selection.kind === Kind.INLINE_FRAGMENT
            ? this.measure(selection.selectionSet, atRoot)
            : this.measureFragment(selection.name.value, atRoot);
        shape.depth = Math.max(shape.depth, inner.depth);
        shape.aliases += inner.aliases;
        shape.fieldsHere += inner.fieldsHere;
        shape.expandedFields += inner.expandedFields;
      }
    }
    return shape;
  }

  private measureFragment(name: string, atRoot: boolean): SelectionShape {
    const key = `${atRoot ? 'root' : 'nested'}:${name}`;
    const known = this.fragmentShapes.get(key);
    if (known) return known;
    const fragment = this.fragments(name);
    // An unknown fragment, or a cycle (graphql's own rules report both): nothing to add.
    if (!fragment || this.measuring.has(key)) return NO_SHAPE;
    this.measuring.add(key);
    const shape = this.measure(fragment.selectionSet, atRoot);
    this.measuring.delete(key);
    this.fragmentShapes.set(key, shape);
    return shape;
  }
}

export function operationShapeRule(limits: GraphqlLimits) {
  return function operationShape(context: ValidationContext): ASTVisitor {
    const meter = new ShapeMeter((name) => context.getFragment(name));
    return {
      OperationDefinition(operation: OperationDefinitionNode) {
        const shape = meter.measure(operation.selectionSet, true);
        if (shape.depth > limits.maxDepth) {
          context.reportError(limitError(`The query is nested deeper than the limit of ${limits.maxDepth} levels.`));
        } else if (shape.aliases > limits.maxAliases) {
          context.reportError(limitError(`The query uses more than ${limits.maxAliases} aliases.`));
        } else if (shape.fieldsHere > limits.maxRootFields) {
          context.reportError(limitError(`The query asks for more than ${limits.maxRootFields} top-level fields.`));
        } else if (shape.expandedFields > MAX_EXPANDED_FIELDS) {
          context.reportError(
            limitError(`The query asks for more than ${MAX_EXPANDED_FIELDS} fields once its fragments are expanded.`),
          );
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
  // An explicit `first: null` asks for the default page (pageWindow), so it costs that page.
  const first = args.first === null ? pageSizeDefault(field) : args.first;
  if (typeof first === 'number' && first > 0) return 1 + childComplexity * first;
  return undefined;
};

function pageSizeDefault(field: GraphQLField<unknown, unknown>): number | undefined {
  const argument = field.args.find((candidate) => candidate.name === 'first');
  if (argument === undefined) return undefined;
  return typeof argument.defaultValue === 'number' ? argument.defaultValue : DEFAULT_PAGE_SIZE;
}

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
