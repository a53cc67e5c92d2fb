import { Authorized, Ctx, Field, ObjectType, Query, Resolver } from 'type-graphql';
import { viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';

@ObjectType('Viewer')
export class ViewerObject {
  @Field(() => String)
  userId!: string;

  @Field(() => Boolean)
  isAdmin!: boolean;

  @Field(() => String, { nullable: true, description: "the token's name claim, else the directory's name" })
  name!: string | null;
}

@Resolver(() => ViewerObject)
export class ViewerResolver {
  @Authorized()
  @Query(() => ViewerObject, { description: 'who the token belongs to' })
  async viewer(@Ctx() context: RequestContext): Promise<ViewerObject> {
    const viewer = viewerOf(context);
    const name = viewer.name ?? (await context.services.directory.findById(viewer.userId))?.name ?? null;
    return { userId: viewer.userId, isAdmin: viewer.isAdmin, name };
  }
}
