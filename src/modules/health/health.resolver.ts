import { Ctx, Field, ObjectType, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../../graphql/context.js';

@ObjectType('Health')
export class HealthObject {
  @Field(() => String, { description: '"ok" when the database answers, "degraded" otherwise' })
  status!: string;

  @Field(() => Boolean)
  database!: boolean;

  @Field(() => Boolean, { description: 'the last probe of the AI gateway succeeded' })
  gateway!: boolean;

  @Field(() => String)
  version!: string;
}

@Resolver()
export class HealthResolver {
  /** Public: load balancers and operators call it without a token. */
  @Query(() => HealthObject)
  async health(@Ctx() context: RequestContext): Promise<HealthObject> {
    return context.services.health.report();
  }
}
