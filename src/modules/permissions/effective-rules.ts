import type { StoredSource } from './permission.enums.js';

/**
 * The pure rules of SPEC §6: which setting is effective for an employee, and when the gateway must
 * be told. No database, no gateway: everything here is decided from values already loaded.
 */

/** Who a recompute is for: the employee key and the department path (root first). */
export interface Subject {
  key: string;
  departmentPath: string[];
}

/** One explicit setting as the rules see it. */
export interface SettingValue<V> {
  id: string;
  value: V;
}

/** The explicit settings that can apply to a set of subjects. */
export interface SettingsIndex<V> {
  users: Map<string, SettingValue<V>>;
  departments: Map<string, SettingValue<V>>;
}

export interface Effective<V> {
  value: V;
  source: StoredSource;
  /** The user key or department name; null for the default. */
  sourceIdentifier: string | null;
  settingId: string | null;
}

/**
 * The user's setting if it applies, else the deepest department's on the path (leaf to root) that
 * applies, else the fallback. `applies` is where the kinds differ: an empty whitelist counts as
 * "not configured" and falls through; a switch setting applies whether true or false. A null key
 * (a department's own effective value) skips the user step.
 */
export function resolveEffective<V>(
  subject: { key: string | null; departmentPath: readonly string[] },
  settings: SettingsIndex<V>,
  applies: (value: V) => boolean,
  fallback: V,
): Effective<V> {
  const own = subject.key === null ? undefined : settings.users.get(subject.key);
  if (own && subject.key !== null && applies(own.value)) {
    return { value: own.value, source: 'user', sourceIdentifier: subject.key, settingId: own.id };
  }
  for (let depth = subject.departmentPath.length - 1; depth >= 0; depth -= 1) {
    const department = subject.departmentPath[depth]!;
    const setting = settings.departments.get(department);
    if (setting && applies(setting.value)) {
      return { value: setting.value, source: 'department', sourceIdentifier: department, settingId: setting.id };
    }
  }
  return { value: fallback, source: 'default', sourceIdentifier: null, settingId: null };
}

/**
 * What the gateway was last told about one employee and kind: `notified` null = never told;
 * `uncertain` = a push since then failed in a way that may have landed (SPEC §8: its answer was
 * lost), so the gateway may hold something else.
 */
export interface LastTold<V> {
  notified: V | null;
  uncertain: boolean;
}

export const NEVER_TOLD: LastTold<never> = { notified: null, uncertain: false };

/**
 * SPEC §6 push rule, the same for every kind: push when the value differs from what the gateway was
 * last told, or — never told — when it comes from an explicit setting. And whenever the gateway may
 * hold something other than "last told" (a push failed that may have landed): otherwise a value set
 * back to "last told" would count as told while the gateway kept the one that landed unseen. For models "comes from a
 * setting" and "non-empty" are the same thing (the default is [] and empty lists never apply), so
 * clearing pushes [] and a new employee with nothing applicable is not pushed; for switches an
 * explicit false is pushed. permission-store.ts's loadEffectiveOwingPush pre-filters with the same
 * rule in SQL (then applies this one): change both together.
 */
export function needsPush<V>(
  effective: { value: V; source: StoredSource },
  told: LastTold<V>,
  equals: (a: V, b: V) => boolean,
): boolean {
  if (told.uncertain) return true;
  if (told.notified === null) return effective.source !== 'default';
  return !equals(effective.value, told.notified);
}

export function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index]);
}

/** Model lists are stored joined by ',' (names never contain one); '' is the empty list. */
export function joinModels(models: readonly string[]): string {
  return models.join(',');
}

export function splitModels(stored: string | null | undefined): string[] {
  if (!stored) return [];
  return stored.split(',').filter((name) => name !== '');
}

/** The department names that can apply to a set of subjects (every element of every path). */
export function departmentsOnPaths(subjects: readonly Subject[]): string[] {
  const names = new Set<string>();
  for (const subject of subjects) for (const name of subject.departmentPath) names.add(name);
  return [...names];
}
