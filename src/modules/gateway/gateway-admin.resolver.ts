import {
  Arg,
  Authorized,
  Ctx,
  Field,
  Float,
  Mutation,
  ObjectType,
  Query,
  Resolver,
  registerEnumType,
} from 'type-graphql';
import { Role, viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { GatewayAdminService } from './gateway-admin.service.js';

export enum GatewayCounter {
  TOTAL = 'TOTAL',
  USED = 'USED',
}
registerEnumType(GatewayCounter, { name: 'GatewayCounter' });

@ObjectType('GatewayUserQuota')
export class GatewayUserQuotaObject {
  @Field(() => String)
  userId!: string;

  @Field(() => Float)
  totalQuota!: number;

  @Field(() => Float)
  usedQuota!: number;
}

@ObjectType('GatewayEmployeeState')
export class GatewayEmployeeStateObject {
  @Field(() => String)
  employeeNumber!: string;

  @Field(() => [String])
  starredProjects!: string[];

  @Field(() => Boolean)
  starCheck!: boolean;

  @Field(() => Boolean)
  quotaCheck!: boolean;

  @Field(() => [String])
  models!: string[];
}

/**
 * Direct access to the gateway's counters and switches, for administrators repairing state by
 * hand. These bypass the ledger on purpose; every write is logged with the acting admin.
 */
@Resolver()
export class GatewayAdminResolver {
  private service(context: RequestContext): GatewayAdminService {
    return context.services.gatewayAdmin;
  }

  @Authorized(Role.ADMIN)
  @Query(() => GatewayUserQuotaObject)
  async gatewayQuota(@Arg('userId', () => String) userId: string, @Ctx() context: RequestContext) {
    return this.service(context).userQuota(userId);
  }

  @Authorized(Role.ADMIN)
  @Query(() => GatewayEmployeeStateObject)
  async gatewayEmployee(@Arg('employeeNumber', () => String) employeeNumber: string, @Ctx() context: RequestContext) {
    return this.service(context).employeeState(employeeNumber);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => GatewayUserQuotaObject, { description: 'absolute write of one counter' })
  async setGatewayQuota(
    @Arg('userId', () => String) userId: string,
    @Arg('counter', () => GatewayCounter) counter: GatewayCounter,
    @Arg('value', () => Float) value: number,
    @Ctx() context: RequestContext,
  ) {
    return this.service(context).setCounter(viewerOf(context), userId, counter, value);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => GatewayUserQuotaObject, {
    description: 'relative change of one counter; not retried when the outcome is unknown',
  })
  async adjustGatewayQuota(
    @Arg('userId', () => String) userId: string,
    @Arg('counter', () => GatewayCounter) counter: GatewayCounter,
    @Arg('delta', () => Float) delta: number,
    @Ctx() context: RequestContext,
  ) {
    return this.service(context).adjustCounter(viewerOf(context), userId, counter, delta);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => GatewayEmployeeStateObject)
  async setGatewayStarredProjects(
    @Arg('employeeNumber', () => String) employeeNumber: string,
    @Arg('projects', () => [String]) projects: string[],
    @Ctx() context: RequestContext,
  ) {
    return this.service(context).setStarredProjects(viewerOf(context), employeeNumber, projects);
  }
}
