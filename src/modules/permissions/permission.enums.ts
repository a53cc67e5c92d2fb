import { registerEnumType } from 'type-graphql';

/** The three things an administrator sets per user or department (contract: PermissionKind). */
export enum PermissionKind {
  MODEL = 'MODEL',
  STAR_CHECK = 'STAR_CHECK',
  QUOTA_CHECK = 'QUOTA_CHECK',
}
registerEnumType(PermissionKind, { name: 'PermissionKind' });

export enum TargetType {
  USER = 'USER',
  DEPARTMENT = 'DEPARTMENT',
}
registerEnumType(TargetType, { name: 'TargetType' });

export enum WhitelistAction {
  SET = 'SET',
  ADD = 'ADD',
  REMOVE = 'REMOVE',
}
registerEnumType(WhitelistAction, { name: 'WhitelistAction' });

export enum PermissionSource {
  USER = 'USER',
  DEPARTMENT = 'DEPARTMENT',
  DEFAULT = 'DEFAULT',
}
registerEnumType(PermissionSource, { name: 'PermissionSource' });

/** How target types and sources are spelled in the old system's columns. */
export type StoredTargetType = 'user' | 'department';
export type StoredSource = 'user' | 'department' | 'default';

export function targetTypeOf(stored: string | null | undefined): TargetType | null {
  if (stored === 'user') return TargetType.USER;
  if (stored === 'department') return TargetType.DEPARTMENT;
  return null;
}

export function sourceOf(stored: string): PermissionSource {
  if (stored === 'user') return PermissionSource.USER;
  if (stored === 'department') return PermissionSource.DEPARTMENT;
  return PermissionSource.DEFAULT;
}
