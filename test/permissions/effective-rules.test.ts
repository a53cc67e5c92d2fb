import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import {
  joinModels,
  needsPush,
  resolveEffective,
  type SettingsIndex,
  sameList,
  splitModels,
} from '../../src/modules/permissions/effective-rules.js';
import { WhitelistAction } from '../../src/modules/permissions/permission.enums.js';
import {
  applyWhitelistAction,
  normalizeModelNames,
  parseTarget,
} from '../../src/modules/permissions/permission-input.js';
import { MODEL_SPEC, STAR_CHECK_SPEC } from '../../src/modules/permissions/permission-kinds.js';

function index<V>(users: Record<string, V>, departments: Record<string, V>): SettingsIndex<V> {
  const toMap = (entries: Record<string, V>) =>
    new Map(Object.entries(entries).map(([name, value], position) => [name, { id: String(position + 1), value }]));
  return { users: toMap(users), departments: toMap(departments) };
}

const models = (subjectPath: string[], settings: SettingsIndex<string[]>, key: string | null = 'E1') =>
  resolveEffective({ key, departmentPath: subjectPath }, settings, MODEL_SPEC.applies, MODEL_SPEC.fallback);
const starCheck = (subjectPath: string[], settings: SettingsIndex<boolean>, key: string | null = 'E1') =>
  resolveEffective({ key, departmentPath: subjectPath }, settings, STAR_CHECK_SPEC.applies, STAR_CHECK_SPEC.fallback);

function codeOf(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return 'no error';
}

describe('effective value (SPEC §6)', () => {
  it("the user's whitelist beats every department's", () => {
    const effective = models(['Corp', 'R&D'], index({ E1: ['own'] }, { Corp: ['corp'], 'R&D': ['rd'] }));
    expect(effective).toMatchObject({ value: ['own'], source: 'user', sourceIdentifier: 'E1' });
  });

  it.each([1, 2, 3, 5])('the deepest department with a whitelist wins at depth %i', (depth) => {
    const path = ['L1', 'L2', 'L3', 'L4', 'L5'].slice(0, depth);
    const settings = index<string[]>({}, { L1: ['m1'], L2: ['m2'], L3: ['m3'], L4: ['m4'], L5: ['m5'] });
    expect(models(path, settings)).toMatchObject({
      value: [`m${depth}`],
      source: 'department',
      sourceIdentifier: `L${depth}`,
    });
  });

  it('empty whitelists count as "not configured" and fall through to the next level', () => {
    const settings = index<string[]>({ E1: [] }, { L1: ['m1'], L2: [], L3: [] });
    expect(models(['L1', 'L2', 'L3'], settings)).toMatchObject({ value: ['m1'], sourceIdentifier: 'L1' });
    expect(models(['L2', 'L3'], settings)).toMatchObject({ value: [], source: 'default', sourceIdentifier: null });
  });

  it('with nothing applicable the models are [] and the switches false, from the default', () => {
    expect(models(['Corp'], index({}, {}))).toEqual({
      value: [],
      source: 'default',
      sourceIdentifier: null,
      settingId: null,
    });
    expect(starCheck(['Corp'], index({}, {}))).toMatchObject({ value: false, source: 'default' });
  });

  it("a user's false switch beats a department's true, and a deeper false beats a shallower true", () => {
    expect(starCheck(['Corp'], index({ E1: false }, { Corp: true }))).toMatchObject({ value: false, source: 'user' });
    expect(starCheck(['Corp', 'R&D'], index({}, { Corp: true, 'R&D': false }))).toMatchObject({
      value: false,
      sourceIdentifier: 'R&D',
    });
  });

  it('a department (no key) gets its own setting, else its ancestors', () => {
    const settings = index<string[]>({ E1: ['own'] }, { Corp: ['corp'] });
    expect(models(['Corp', 'R&D'], settings, null)).toMatchObject({ value: ['corp'], sourceIdentifier: 'Corp' });
  });
});

describe('push rules (SPEC §6)', () => {
  const eq = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const told = <V>(notified: V | null) => ({ notified, uncertain: false });
  const mayHold = <V>(notified: V | null) => ({ notified, uncertain: true });

  it('models: pushed when they differ from what was last told, or never told and non-empty', () => {
    expect(needsPush({ value: [], source: 'default' }, told(null), eq)).toBe(false);
    expect(needsPush({ value: ['a'], source: 'department' }, told(null), eq)).toBe(true);
    expect(needsPush({ value: ['a'], source: 'department' }, told(['a']), eq)).toBe(false);
    expect(needsPush({ value: ['a', 'b'], source: 'department' }, told(['a']), eq)).toBe(true);
    expect(needsPush({ value: [], source: 'default' }, told(['a']), eq)).toBe(true);
  });

  it('switches: never told → pushed only when an explicit setting gives the value, even false', () => {
    expect(needsPush({ value: false, source: 'default' }, told(null), eq)).toBe(false);
    expect(needsPush({ value: false, source: 'user' }, told(null), eq)).toBe(true);
    expect(needsPush({ value: true, source: 'department' }, told(null), eq)).toBe(true);
    expect(needsPush({ value: true, source: 'department' }, told(true), eq)).toBe(false);
    expect(needsPush({ value: false, source: 'default' }, told(true), eq)).toBe(true);
  });

  it('a push that may have landed unseen makes the next one owed whatever the value', () => {
    expect(needsPush({ value: ['a'], source: 'department' }, mayHold(['a']), eq)).toBe(true);
    expect(needsPush({ value: [], source: 'default' }, mayHold(null), eq)).toBe(true);
    expect(needsPush({ value: true, source: 'user' }, mayHold(true), eq)).toBe(true);
  });

  it('model lists keep their order and compare in order', () => {
    expect(splitModels(joinModels(['b', 'a']))).toEqual(['b', 'a']);
    expect(splitModels('')).toEqual([]);
    expect(sameList(['a', 'b'], ['b', 'a'])).toBe(false);
  });
});

describe('whitelist input', () => {
  it('SET replaces, ADD appends the missing names in order, REMOVE drops names', () => {
    expect(applyWhitelistAction(['a', 'b'], WhitelistAction.SET, ['c'])).toEqual(['c']);
    expect(applyWhitelistAction(['a', 'b'], WhitelistAction.ADD, ['c', 'a', 'd'])).toEqual(['a', 'b', 'c', 'd']);
    expect(applyWhitelistAction(['a', 'b', 'c'], WhitelistAction.REMOVE, ['b', 'x'])).toEqual(['a', 'c']);
  });

  it('a result over 50 names is refused', () => {
    const fifty = Array.from({ length: 50 }, (_, i) => `m${i}`);
    expect(applyWhitelistAction([], WhitelistAction.SET, fifty)).toHaveLength(50);
    expect(codeOf(() => applyWhitelistAction(fifty, WhitelistAction.ADD, ['one-more']))).toBe(ErrorCode.BAD_USER_INPUT);
  });

  it('names are trimmed and kept once; 1-100 characters, no commas, at most 50', () => {
    expect(normalizeModelNames([' gpt-4o ', 'gpt-4o', 'claude'])).toEqual(['gpt-4o', 'claude']);
    expect(normalizeModelNames(['x'.repeat(100)])).toHaveLength(1);
    for (const bad of [
      [''],
      ['   '],
      ['x'.repeat(101)],
      ['a,b'],
      ['tab\there'],
      Array.from({ length: 51 }, (_, i) => `m${i}`),
    ]) {
      expect(codeOf(() => normalizeModelNames(bad))).toBe(ErrorCode.BAD_USER_INPUT);
    }
  });

  it('a target is exactly one of user and departmentName', () => {
    expect(parseTarget({ userId: 'u' }, null)).toEqual({ type: 'user', ref: { userId: 'u', employeeNumber: null } });
    expect(parseTarget(null, ' R&D ')).toEqual({ type: 'department', name: 'R&D' });
    expect(codeOf(() => parseTarget({ userId: 'u' }, 'R&D'))).toBe(ErrorCode.BAD_USER_INPUT);
    expect(codeOf(() => parseTarget(null, null))).toBe(ErrorCode.BAD_USER_INPUT);
    expect(codeOf(() => parseTarget(undefined, '  '))).toBe(ErrorCode.BAD_USER_INPUT);
    expect(codeOf(() => parseTarget(undefined, 'x'.repeat(201)))).toBe(ErrorCode.BAD_USER_INPUT);
  });
});
