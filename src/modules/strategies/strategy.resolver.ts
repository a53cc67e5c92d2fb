import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Role, viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { type Connection, ConnectionArgs } from '../../graphql/pagination.js';
import { DateTimeScalar } from '../../graphql/scalars.js';
import { centsToAmount, decimalToCents } from '../../money.js';
import { IDEMPOTENCY_KEY_DESCRIPTION } from '../idempotency/idempotency.graphql.js';
import { readIdempotencyKey } from '../idempotency/idempotency-keys.js';
import { JobRunObject, toJobRunObject } from '../jobs/jobs.resolver.js';
import type { QuotaStrategy } from './strategy.entity.js';
import {
  ConditionValidationObject,
  CreateStrategyInput,
  ExecutionStatus,
  type StrategyExecutionObject,
  StrategyExecutionPage,
  StrategyFilterInput,
  StrategyObject,
  StrategyPage,
  StrategyPreviewObject,
  StrategyType,
  UpdateStrategyInput,
} from './strategy.types.js';
import { ExecutionPageLoader } from './strategy-executions.js';

/** The stored strategy as the API shows it; nextRunAt and executions are resolved on demand. */
function toStrategyObject(strategy: QuotaStrategy): StrategyObject {
  return {
    id: String(strategy.id),
    name: strategy.name,
    title: strategy.title,
    type: strategy.type === 'periodic' ? StrategyType.PERIODIC : StrategyType.SINGLE,
    amount: centsToAmount(decimalToCents(strategy.amount)),
    model: strategy.model ?? null,
    periodicExpr: strategy.periodicExpr ?? null,
    condition: strategy.condition,
    maxExecPerUser: strategy.maxExecPerUser,
    validityDays: strategy.validityDays ?? null,
    enabled: strategy.status,
    createdAt: strategy.createdAt,
    updatedAt: strategy.updatedAt,
    source: strategy,
  } as StrategyObject;
}

/** The entity behind a StrategyObject (kept out of the GraphQL shape). */
function sourceOf(strategy: StrategyObject): QuotaStrategy {
  return (strategy as StrategyObject & { source: QuotaStrategy }).source;
}

const loaders = new WeakMap<RequestContext, ExecutionPageLoader>();

function executionLoader(context: RequestContext): ExecutionPageLoader {
  let loader = loaders.get(context);
  if (!loader) {
    loader = new ExecutionPageLoader(context.em);
    loaders.set(context, loader);
  }
  return loader;
}

/** Strategies [admin] (SPEC §4): thin — access, arguments, the service. */
@Resolver(() => StrategyObject)
export class StrategyResolver {
  @Authorized(Role.ADMIN)
  @Query(() => StrategyPage.Connection)
  async strategies(
    @Arg('filter', () => StrategyFilterInput, { nullable: true }) filter: StrategyFilterInput | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<StrategyObject>> {
    const connection = await context.services.strategies.listStrategies(context.em, filter ?? {}, page);
    const nodes = connection.nodes.map(toStrategyObject);
    return {
      ...connection,
      nodes,
      edges: connection.edges.map((edge, index) => ({ cursor: edge.cursor, node: nodes[index]! })),
    };
  }

  @Authorized(Role.ADMIN)
  @Query(() => StrategyObject, { nullable: true, description: 'null when absent' })
  async strategy(@Arg('id', () => ID) id: string, @Ctx() context: RequestContext): Promise<StrategyObject | null> {
    const strategy = await context.services.strategies.findStrategy(context.em, id);
    return strategy ? toStrategyObject(strategy) : null;
  }

  @Authorized(Role.ADMIN)
  @Query(() => StrategyExecutionPage.Connection)
  strategyExecutions(
    @Arg('strategyId', () => ID) strategyId: string,
    @Arg('status', () => ExecutionStatus, { nullable: true }) status: ExecutionStatus | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<StrategyExecutionObject>> {
    return context.services.strategies.listExecutions(context.em, strategyId, status ?? null, page);
  }

  @Authorized(Role.ADMIN)
  @Query(() => ConditionValidationObject)
  validateCondition(
    @Arg('expression', () => String) expression: string,
    @Ctx() context: RequestContext,
  ): ConditionValidationObject {
    return context.services.strategies.validateCondition(expression);
  }

  @Authorized(Role.ADMIN)
  @Query(() => StrategyPreviewObject)
  previewCondition(
    @Arg('expression', () => String) expression: string,
    @Arg('sample', () => Int, { nullable: true, defaultValue: 10 }) sample: number | null,
    @Ctx() context: RequestContext,
  ): Promise<StrategyPreviewObject> {
    return context.services.strategies.previewCondition(expression, sample ?? 10);
  }

  @Authorized(Role.ADMIN)
  @Query(() => [DateTimeScalar], { description: 'next fire times; INVALID_CRON when bad' })
  validateCron(
    @Arg('expression', () => String) expression: string,
    @Arg('count', () => Int, { nullable: true, defaultValue: 5 }) count: number | null,
    @Ctx() context: RequestContext,
  ): Date[] {
    return context.services.strategies.validateCron(expression, count ?? 5);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => StrategyObject, { description: 'CONFLICT on a taken name' })
  async createStrategy(
    @Arg('input', () => CreateStrategyInput) input: CreateStrategyInput,
    @Ctx() context: RequestContext,
  ): Promise<StrategyObject> {
    const actor = viewerOf(context).userId;
    return toStrategyObject(await context.services.strategies.createStrategy(context.em, actor, input));
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => StrategyObject, { description: 'NOT_FOUND' })
  async updateStrategy(
    @Arg('id', () => ID) id: string,
    @Arg('input', () => UpdateStrategyInput) input: UpdateStrategyInput,
    @Ctx() context: RequestContext,
  ): Promise<StrategyObject> {
    const actor = viewerOf(context).userId;
    return toStrategyObject(await context.services.strategies.updateStrategy(context.em, actor, id, input));
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => Boolean, { description: 'false when it did not exist' })
  deleteStrategy(@Arg('id', () => ID) id: string, @Ctx() context: RequestContext): Promise<boolean> {
    return context.services.strategies.deleteStrategy(context.em, viewerOf(context).userId, id);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => StrategyObject)
  async enableStrategy(@Arg('id', () => ID) id: string, @Ctx() context: RequestContext): Promise<StrategyObject> {
    const actor = viewerOf(context).userId;
    return toStrategyObject(await context.services.strategies.setEnabled(context.em, actor, id, true));
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => StrategyObject)
  async disableStrategy(@Arg('id', () => ID) id: string, @Ctx() context: RequestContext): Promise<StrategyObject> {
    const actor = viewerOf(context).userId;
    return toStrategyObject(await context.services.strategies.setEnabled(context.em, actor, id, false));
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => JobRunObject, { description: 'execute one strategy now, over all users' })
  async runStrategy(
    @Arg('id', () => ID) id: string,
    @Arg('idempotencyKey', () => String, { nullable: true, description: IDEMPOTENCY_KEY_DESCRIPTION })
    idempotencyKey: string | null,
    @Ctx() context: RequestContext,
  ): Promise<JobRunObject> {
    const actor = viewerOf(context).userId;
    const key = readIdempotencyKey(idempotencyKey);
    return toJobRunObject(await context.services.strategies.runStrategy(context.em, actor, id, key));
  }

  @FieldResolver(() => DateTimeScalar, { nullable: true, description: 'PERIODIC and enabled only' })
  nextRunAt(@Root() strategy: StrategyObject, @Ctx() context: RequestContext): Date | null {
    return context.services.strategies.nextRunAt(sourceOf(strategy));
  }

  @FieldResolver(() => StrategyExecutionPage.Connection)
  executions(
    @Root() strategy: StrategyObject,
    @Arg('status', () => ExecutionStatus, { nullable: true }) status: ExecutionStatus | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<StrategyExecutionObject>> {
    return executionLoader(context).load(strategy.id, status ?? null, page);
  }
}
