import { Field, ID, InputType, ObjectType } from 'type-graphql';
import { connectionTypes } from '../../graphql/pagination.js';
import { DateTimeScalar, JSONObjectScalar } from '../../graphql/scalars.js';
import { PermissionKind, PermissionSource, TargetType, WhitelistAction } from './permission.enums.js';

/** Exactly one of the two (checked by EmployeeDirectory.resolveEmployeeKey). */
@InputType('UserRef')
export class UserRefInput {
  @Field(() => String, { nullable: true })
  userId?: string | null;

  @Field(() => String, { nullable: true })
  employeeNumber?: string | null;
}

@InputType('SetModelWhitelistInput')
export class SetModelWhitelistInput {
  @Field(() => UserRefInput, { nullable: true, description: 'exactly one of user / departmentName' })
  user?: UserRefInput | null;

  @Field(() => String, { nullable: true })
  departmentName?: string | null;

  @Field(() => [String], { description: 'at most 50 names, each 1-100 characters without commas' })
  models!: string[];

  @Field(() => WhitelistAction, { nullable: true, defaultValue: WhitelistAction.SET })
  action?: WhitelistAction | null;
}

@InputType('SetSwitchInput')
export class SetSwitchInput {
  @Field(() => PermissionKind, { description: 'STAR_CHECK or QUOTA_CHECK' })
  kind!: PermissionKind;

  @Field(() => UserRefInput, { nullable: true, description: 'exactly one of user / departmentName' })
  user?: UserRefInput | null;

  @Field(() => String, { nullable: true })
  departmentName?: string | null;

  @Field(() => Boolean)
  enabled!: boolean;
}

@ObjectType('ModelWhitelist')
export class ModelWhitelistObject {
  @Field(() => TargetType)
  targetType!: TargetType;

  @Field(() => String, { description: "the user's employee key, or the department name" })
  targetIdentifier!: string;

  @Field(() => [String])
  models!: string[];

  @Field(() => DateTimeScalar, { nullable: true })
  updatedAt!: Date | null;
}

@ObjectType('SwitchSetting')
export class SwitchSettingObject {
  @Field(() => PermissionKind)
  kind!: PermissionKind;

  @Field(() => TargetType)
  targetType!: TargetType;

  @Field(() => String)
  targetIdentifier!: string;

  @Field(() => Boolean)
  enabled!: boolean;

  @Field(() => DateTimeScalar, { nullable: true })
  updatedAt!: Date | null;
}

@ObjectType('EffectivePermission')
export class EffectivePermissionObject {
  @Field(() => PermissionKind)
  kind!: PermissionKind;

  @Field(() => TargetType)
  targetType!: TargetType;

  @Field(() => String)
  targetIdentifier!: string;

  @Field(() => [String], { nullable: true, description: 'MODEL' })
  models!: string[] | null;

  @Field(() => Boolean, { nullable: true, description: 'STAR_CHECK, QUOTA_CHECK' })
  enabled!: boolean | null;

  @Field(() => PermissionSource)
  source!: PermissionSource;

  @Field(() => String, { nullable: true, description: 'the user key or department name it came from' })
  sourceIdentifier!: string | null;
}

@ObjectType('PermissionAudit')
export class PermissionAuditObject {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  operation!: string;

  @Field(() => TargetType, { nullable: true })
  targetType!: TargetType | null;

  @Field(() => String, { nullable: true })
  targetIdentifier!: string | null;

  @Field(() => JSONObjectScalar, { nullable: true })
  details!: Record<string, unknown> | null;

  @Field(() => DateTimeScalar)
  createdAt!: Date;
}

export const PermissionAuditPage = connectionTypes(PermissionAuditObject, 'PermissionAudit');
