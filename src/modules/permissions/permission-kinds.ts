import { badInput } from '../../errors.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { joinModels, sameList, splitModels } from './effective-rules.js';
import { PermissionKind } from './permission.enums.js';

/**
 * What differs between the three kinds of SPEC §6, in one place: where each is stored, how its value
 * reads and writes, when a setting "applies", the default, and how the gateway is told. Everything
 * else (recompute, push rules, audits) is the same code for all three.
 */
export interface KindSpec<V> {
  kind: PermissionKind;
  settingsTable: string;
  /** Column of the value in the settings table. */
  settingValueColumn: string;
  effectiveTable: string;
  effectiveValueColumn: string;
  settingIdColumn: string;
  notifiedColumn: string;
  /** SQL type of the stored value, for jsonb_to_recordset. */
  sqlType: 'text' | 'boolean';
  /** Audit operation names (the old system's). */
  setOperation: string;
  recomputeOperation: string;
  fallback: V;
  // Method syntax on purpose: it keeps KindSpec<string[]> assignable to KindSpec<unknown>.
  read(stored: unknown): V;
  write(value: V): string | boolean;
  applies(value: V): boolean;
  equals(a: V, b: V): boolean;
  push(gateway: GatewayClient, key: string, value: V): Promise<void>;
}

export type AnyKindSpec = KindSpec<string[]> | KindSpec<boolean>;

export const MODEL_SPEC: KindSpec<string[]> = {
  kind: PermissionKind.MODEL,
  settingsTable: 'model_whitelist',
  settingValueColumn: 'allowed_models',
  effectiveTable: 'effective_permissions',
  effectiveValueColumn: 'effective_models',
  settingIdColumn: 'whitelist_id',
  notifiedColumn: 'notified_models',
  sqlType: 'text',
  setOperation: 'whitelist_set',
  recomputeOperation: 'permission_updated',
  fallback: [],
  read: (stored) => splitModels(stored as string | null),
  write: (value) => joinModels(value),
  // An empty whitelist counts as "not configured": it falls through to the department above.
  applies: (value) => value.length > 0,
  equals: sameList,
  push: (gateway, key, value) => gateway.setModels(key, value),
};

function switchSpec(
  kind: PermissionKind.STAR_CHECK | PermissionKind.QUOTA_CHECK,
  prefix: 'star_check' | 'quota_check',
): KindSpec<boolean> {
  return {
    kind,
    settingsTable: `${prefix}_settings`,
    settingValueColumn: 'enabled',
    effectiveTable: `effective_${prefix}_settings`,
    effectiveValueColumn: 'enabled',
    settingIdColumn: 'setting_id',
    notifiedColumn: 'notified_enabled',
    sqlType: 'boolean',
    setOperation: `${prefix}_set`,
    recomputeOperation: `${prefix}_setting_update`,
    fallback: false,
    read: (stored) => stored === true,
    write: (value) => value,
    // An explicit false is a setting too: it overrides the department's true.
    applies: () => true,
    equals: (a, b) => a === b,
    push: (gateway, key, value) =>
      kind === PermissionKind.STAR_CHECK ? gateway.setStarCheck(key, value) : gateway.setQuotaCheck(key, value),
  };
}

export const STAR_CHECK_SPEC = switchSpec(PermissionKind.STAR_CHECK, 'star_check');
export const QUOTA_CHECK_SPEC = switchSpec(PermissionKind.QUOTA_CHECK, 'quota_check');

export const ALL_SPECS: readonly AnyKindSpec[] = [MODEL_SPEC, STAR_CHECK_SPEC, QUOTA_CHECK_SPEC];

export function specFor(kind: PermissionKind): AnyKindSpec {
  const spec = ALL_SPECS.find((candidate) => candidate.kind === kind);
  if (!spec) throw badInput(`unknown permission kind ${String(kind)}`);
  return spec;
}

/** setSwitch and switchSetting take only the two switches (SPEC §6); MODEL is BAD_USER_INPUT. */
export function switchSpecFor(kind: PermissionKind): KindSpec<boolean> {
  if (kind === PermissionKind.STAR_CHECK) return STAR_CHECK_SPEC;
  if (kind === PermissionKind.QUOTA_CHECK) return QUOTA_CHECK_SPEC;
  throw badInput(`kind must be STAR_CHECK or QUOTA_CHECK here, got ${String(kind)}; use setModelWhitelist for MODEL`);
}
