import { Arg, Args, Authorized, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Role, requireSelfOrAdmin, viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { type Connection, ConnectionArgs } from '../../graphql/pagination.js';
import { IDEMPOTENCY_KEY_DESCRIPTION } from '../idempotency/idempotency.graphql.js';
import { readIdempotencyKey } from '../idempotency/idempotency-keys.js';
import { ViewerObject } from '../users/viewer.resolver.js';
import { toMonthlyUsageObject, toQuotaAuditObject, toUserQuotaObject } from './quota.mappers.js';
import {
  DeductQuotaInput,
  MonthlyUsageObject,
  QuotaAuditFilterInput,
  QuotaAuditObject,
  QuotaAuditPage,
  QuotaBatchObject,
  UserQuotaObject,
} from './quota.types.js';
import { requireUserId } from './quota-input.js';

/**
 * The ledger's API (SPEC §5): thin — check access, map arguments, call QuotaService, map results.
 */
@Resolver(() => UserQuotaObject)
export class QuotaResolver {
  @Authorized()
  @Query(() => UserQuotaObject, { description: "the caller's quota" })
  async myQuota(@Ctx() context: RequestContext): Promise<UserQuotaObject> {
    return userQuota(context, viewerOf(context).userId);
  }

  @Authorized(Role.ADMIN)
  @Query(() => UserQuotaObject, { description: 'USER_NOT_FOUND when the user is not in the directory' })
  async userQuota(
    @Arg('userId', () => String) userId: string,
    @Ctx() context: RequestContext,
  ): Promise<UserQuotaObject> {
    requireUserId(userId);
    await context.services.directory.requireById(userId);
    return userQuota(context, userId);
  }

  /** VALID batches as the ledger holds them: for an admin or the user themself only. */
  @FieldResolver(() => [QuotaBatchObject])
  batches(@Root() quota: UserQuotaObject, @Ctx() context: RequestContext): QuotaBatchObject[] {
    requireSelfOrAdmin(viewerOf(context), quota.userId);
    return quota.batchList;
  }

  @Authorized()
  @Query(() => QuotaAuditPage.Connection)
  async myQuotaAudits(
    @Arg('filter', () => QuotaAuditFilterInput, { nullable: true }) filter: QuotaAuditFilterInput | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<QuotaAuditObject>> {
    return audits(context, viewerOf(context).userId, filter, page);
  }

  @Authorized(Role.ADMIN)
  @Query(() => QuotaAuditPage.Connection)
  async quotaAudits(
    @Arg('userId', () => String) userId: string,
    @Arg('filter', () => QuotaAuditFilterInput, { nullable: true }) filter: QuotaAuditFilterInput | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<QuotaAuditObject>> {
    return audits(context, userId, filter, page);
  }

  @Authorized(Role.ADMIN)
  @Query(() => [MonthlyUsageObject], { description: 'newest first' })
  async monthlyUsage(
    @Arg('userId', () => String) userId: string,
    @Ctx() context: RequestContext,
  ): Promise<MonthlyUsageObject[]> {
    const rows = await context.services.quota.monthlyUsage(context.em, userId);
    return rows.map(toMonthlyUsageObject);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => QuotaAuditObject)
  async deductQuota(
    @Arg('input', () => DeductQuotaInput) input: DeductQuotaInput,
    @Arg('idempotencyKey', () => String, { nullable: true, description: IDEMPOTENCY_KEY_DESCRIPTION })
    idempotencyKey: string | null,
    @Ctx() context: RequestContext,
  ): Promise<QuotaAuditObject> {
    const actor = viewerOf(context).userId;
    const key = readIdempotencyKey(idempotencyKey);
    const row = await context.services.quota.deductQuota(context.em, actor, input, key);
    return toQuotaAuditObject(row);
  }
}

/** `Viewer.quota`: the same as myQuota, on the viewer object. */
@Resolver(() => ViewerObject)
export class ViewerQuotaResolver {
  @FieldResolver(() => UserQuotaObject, { description: 'same as myQuota' })
  async quota(@Root() viewer: ViewerObject, @Ctx() context: RequestContext): Promise<UserQuotaObject> {
    return userQuota(context, viewer.userId);
  }
}

async function userQuota(context: RequestContext, userId: string): Promise<UserQuotaObject> {
  const view = await context.services.quota.getUserQuota(context.em, userId);
  return toUserQuotaObject(view);
}

async function audits(
  context: RequestContext,
  userId: string,
  filter: QuotaAuditFilterInput | null,
  page: ConnectionArgs,
): Promise<Connection<QuotaAuditObject>> {
  const connection = await context.services.quota.listAudits(context.em, userId, filter, page);
  const nodes = connection.nodes.map(toQuotaAuditObject);
  return {
    ...connection,
    nodes,
    edges: connection.edges.map((edge, index) => ({ cursor: edge.cursor, node: nodes[index]! })),
  };
}
