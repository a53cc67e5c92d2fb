import { Arg, Args, Authorized, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { Role, viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { ConnectionArgs } from '../../graphql/pagination.js';
import { PermissionKind, TargetType } from './permission.enums.js';
import {
  EffectivePermissionObject,
  ModelWhitelistObject,
  PermissionAuditPage,
  SetModelWhitelistInput,
  SetSwitchInput,
  SwitchSettingObject,
  UserRefInput,
} from './permission.types.js';

/** SPEC §6 over GraphQL; every operation is for administrators. */
@Resolver()
export class PermissionResolver {
  @Authorized(Role.ADMIN)
  @Query(() => ModelWhitelistObject, { nullable: true, description: 'explicit setting or null' })
  async modelWhitelist(
    @Arg('user', () => UserRefInput, { nullable: true }) user: UserRefInput | null,
    @Arg('departmentName', () => String, { nullable: true }) departmentName: string | null,
    @Ctx() context: RequestContext,
  ) {
    return context.services.permissions.modelWhitelist(context.em, { user, departmentName });
  }

  @Authorized(Role.ADMIN)
  @Query(() => SwitchSettingObject, { nullable: true, description: 'explicit setting or null' })
  async switchSetting(
    @Arg('kind', () => PermissionKind) kind: PermissionKind,
    @Arg('user', () => UserRefInput, { nullable: true }) user: UserRefInput | null,
    @Arg('departmentName', () => String, { nullable: true }) departmentName: string | null,
    @Ctx() context: RequestContext,
  ) {
    return context.services.permissions.switchSetting(context.em, kind, { user, departmentName });
  }

  @Authorized(Role.ADMIN)
  @Query(() => EffectivePermissionObject)
  async effectivePermission(
    @Arg('kind', () => PermissionKind) kind: PermissionKind,
    @Arg('targetType', () => TargetType) targetType: TargetType,
    @Arg('targetIdentifier', () => String) targetIdentifier: string,
    @Ctx() context: RequestContext,
  ) {
    return context.services.permissions.effectivePermission(context.em, kind, targetType, targetIdentifier);
  }

  @Authorized(Role.ADMIN)
  @Query(() => PermissionAuditPage.Connection)
  async permissionAudits(
    @Arg('targetIdentifier', () => String, { nullable: true }) targetIdentifier: string | null,
    @Arg('operation', () => String, { nullable: true }) operation: string | null,
    @Args(() => ConnectionArgs) page: ConnectionArgs,
    @Ctx() context: RequestContext,
  ) {
    return context.services.permissions.permissionAudits(context.em, { targetIdentifier, operation }, page);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => ModelWhitelistObject)
  async setModelWhitelist(
    @Arg('input', () => SetModelWhitelistInput) input: SetModelWhitelistInput,
    @Ctx() context: RequestContext,
  ) {
    return context.services.permissions.setModelWhitelist(context.em, viewerOf(context), input);
  }

  @Authorized(Role.ADMIN)
  @Mutation(() => SwitchSettingObject)
  async setSwitch(@Arg('input', () => SetSwitchInput) input: SetSwitchInput, @Ctx() context: RequestContext) {
    return context.services.permissions.setSwitch(context.em, viewerOf(context), input);
  }
}
