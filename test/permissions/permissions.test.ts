import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { capturingLogger } from '../support/logger.js';
import {
  insertEmployees,
  insertUsers,
  modelPushes,
  PERMISSION_TABLES,
  permissionApi,
  permissionCalls,
  quotaCheckPushes,
  starCheckPushes,
} from './permission-support.js';

/**
 * SPEC §6 over real HTTP, with employee sync enabled (employees keyed by employee number), a real
 * PostgreSQL and the gateway simulator. Every test starts from an empty mirror and empty
 * permission tables.
 */

let t: TestApp;
let api: ReturnType<typeof permissionApi>;
const log = capturingLogger();

beforeAll(async () => {
  t = await startTestApp({ label: 'permissions', env: { HR_SYNC_ENABLED: 'true' }, logger: log.logger });
  api = permissionApi(t);
});

afterAll(async () => {
  await t?.stop();
});

beforeEach(async () => {
  await t.app.services.orm.em
    .fork()
    .execute(`truncate ${[...PERMISSION_TABLES, 'employee_department', 'auth_users'].join(', ')} restart identity`);
  t.simulator.reset();
});

async function notified(table: string, column: string, key: string): Promise<unknown> {
  const rows = await t.app.services.orm.em
    .fork()
    .execute<Record<string, unknown>[]>(`select ${column} as value from ${table} where employee_number = ?`, [key]);
  return rows[0]?.value;
}

describe('effective value', () => {
  it("a user's whitelist beats the department's", async () => {
    await insertEmployees(t, [
      { number: 'E1', path: ['Corp', 'R&D'] },
      { number: 'E2', path: ['Corp', 'R&D'] },
    ]);
    await api.whitelist({ departmentName: 'R&D', models: ['dept-model'] });
    await api.whitelist({ user: { employeeNumber: 'E1' }, models: ['own-model'] });

    expect(await api.effective('MODEL', 'USER', 'E1')).toMatchObject({
      models: ['own-model'],
      enabled: null,
      source: 'USER',
      sourceIdentifier: 'E1',
    });
    expect(await api.effective('MODEL', 'USER', 'E2')).toMatchObject({
      models: ['dept-model'],
      source: 'DEPARTMENT',
      sourceIdentifier: 'R&D',
    });
    const pushes = modelPushes(t.simulator);
    // The department's two pushes run concurrently: their order is not fixed.
    expect(pushes.slice(0, 2).sort()).toEqual([
      ['E1', ['dept-model']],
      ['E2', ['dept-model']],
    ]);
    expect(pushes.slice(2)).toEqual([['E1', ['own-model']]]);
    expect(t.simulator.getEmployee('E1').models).toEqual(['own-model']);
    expect(t.simulator.getEmployee('E2').models).toEqual(['dept-model']);
  });

  it('the deepest department wins at depths 1, 2, 3 and 5, for whitelists and switches', async () => {
    const levels = ['L1', 'L2', 'L3', 'L4', 'L5'];
    await insertEmployees(t, [
      { number: 'D1', path: levels.slice(0, 1) },
      { number: 'D2', path: levels.slice(0, 2) },
      { number: 'D3', path: levels.slice(0, 3) },
      { number: 'D5', path: levels },
    ]);
    // Root first and deepest first: the outcome must not depend on the order of the changes.
    for (const level of ['L1', 'L2', 'L3', 'L5', 'L4']) {
      await api.whitelist({ departmentName: level, models: [`m-${level}`] });
    }
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'L3', enabled: false });
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'L1', enabled: true });

    for (const [employee, depth] of [
      ['D1', 1],
      ['D2', 2],
      ['D3', 3],
      ['D5', 5],
    ] as const) {
      expect(await api.effective('MODEL', 'USER', employee)).toMatchObject({
        models: [`m-L${depth}`],
        source: 'DEPARTMENT',
        sourceIdentifier: `L${depth}`,
      });
      expect(t.simulator.getEmployee(employee).models).toEqual([`m-L${depth}`]);
    }
    expect(await api.effective('STAR_CHECK', 'USER', 'D2')).toMatchObject({ enabled: true, sourceIdentifier: 'L1' });
    expect(await api.effective('STAR_CHECK', 'USER', 'D5')).toMatchObject({ enabled: false, sourceIdentifier: 'L3' });
    expect(Object.fromEntries(starCheckPushes(t.simulator))).toEqual({ D1: true, D2: true, D3: false, D5: false });
  });

  it('an empty whitelist falls through to the department above, and clearing pushes what is left', async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp', 'R&D', 'Platform'] }]);
    await api.whitelist({ departmentName: 'Corp', models: ['corp'] });
    await api.whitelist({ departmentName: 'Platform', models: ['platform'] });
    await api.whitelist({ user: { employeeNumber: 'E1' }, models: ['own'] });
    t.simulator.clearCalls();

    await api.whitelist({ user: { employeeNumber: 'E1' }, models: ['own'], action: 'REMOVE' });
    expect(await api.effective('MODEL', 'USER', 'E1')).toMatchObject({ models: ['platform'], source: 'DEPARTMENT' });
    await api.whitelist({ departmentName: 'Platform', models: [], action: 'SET' });
    expect(await api.effective('MODEL', 'USER', 'E1')).toMatchObject({ models: ['corp'], sourceIdentifier: 'Corp' });
    await api.whitelist({ departmentName: 'Corp', models: ['corp'], action: 'REMOVE' });
    expect(await api.effective('MODEL', 'USER', 'E1')).toMatchObject({ models: [], source: 'DEFAULT' });

    expect(modelPushes(t.simulator)).toEqual([
      ['E1', ['platform']],
      ['E1', ['corp']],
      ['E1', []],
    ]);
  });

  it("switches default to false; a department's true applies; a user's false beats it", async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp', 'Sales'] }]);
    for (const kind of ['STAR_CHECK', 'QUOTA_CHECK']) {
      expect(await api.effective(kind, 'USER', 'E1')).toMatchObject({
        kind,
        models: null,
        enabled: false,
        source: 'DEFAULT',
        sourceIdentifier: null,
      });
    }
    await api.switchOn({ kind: 'QUOTA_CHECK', departmentName: 'Corp', enabled: true });
    expect(await api.effective('QUOTA_CHECK', 'USER', 'E1')).toMatchObject({ enabled: true, source: 'DEPARTMENT' });
    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'E1' }, enabled: false });
    expect(await api.effective('QUOTA_CHECK', 'USER', 'E1')).toMatchObject({ enabled: false, source: 'USER' });
    expect(await api.effective('STAR_CHECK', 'USER', 'E1')).toMatchObject({ enabled: false, source: 'DEFAULT' });
    expect(quotaCheckPushes(t.simulator)).toEqual([
      ['E1', true],
      ['E1', false],
    ]);
    expect(starCheckPushes(t.simulator)).toEqual([]);
  });

  it("a department's effective value is its own setting, else its ancestors', never a user's", async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp', 'R&D', 'Platform'] }]);
    await api.whitelist({ departmentName: 'Corp', models: ['corp'] });
    await api.whitelist({ user: { employeeNumber: 'E1' }, models: ['own'] });
    expect(await api.effective('MODEL', 'DEPARTMENT', 'Platform')).toEqual({
      kind: 'MODEL',
      targetType: 'DEPARTMENT',
      targetIdentifier: 'Platform',
      models: ['corp'],
      enabled: null,
      source: 'DEPARTMENT',
      sourceIdentifier: 'Corp',
    });
    expect(await api.effective('STAR_CHECK', 'DEPARTMENT', 'R&D')).toMatchObject({ enabled: false, source: 'DEFAULT' });
  });

  it('a department name under two parents answers the first path in order, whichever row changed last', async () => {
    // Inserted West first: the physical order of the rows no longer decides.
    await insertEmployees(t, [
      { number: 'W1', path: ['Corp', 'West', 'Sales'] },
      { number: 'E1', path: ['Corp', 'East', 'Sales'] },
    ]);
    await api.whitelist({ departmentName: 'East', models: ['east-model'] });
    await api.whitelist({ departmentName: 'West', models: ['west-model'] });
    const east = { models: ['east-model'], source: 'DEPARTMENT', sourceIdentifier: 'East' };
    expect(await api.effective('MODEL', 'DEPARTMENT', 'Sales')).toMatchObject(east);
    await t.app.services.orm.em
      .fork()
      .execute(`update employee_department set update_time = now() where employee_number = 'E1'`);
    expect(await api.effective('MODEL', 'DEPARTMENT', 'Sales')).toMatchObject(east);
    // Each employee still gets their own path's value.
    expect(await api.effective('MODEL', 'USER', 'W1')).toMatchObject({ models: ['west-model'] });
  });
});

describe('push rules', () => {
  it('a department setting pushes once per employee; a change once each; no change never; clearing pushes []', async () => {
    await insertEmployees(t, [
      { number: 'S1', path: ['Corp', 'Sales'] },
      { number: 'S2', path: ['Corp', 'Sales'] },
      { number: 'S3', path: ['Corp', 'Sales', 'East'] },
      { number: 'X1', path: ['Corp', 'Support'] },
    ]);
    const pushesAfter = async (change: () => Promise<unknown>) => {
      t.simulator.clearCalls();
      await change();
      return modelPushes(t.simulator).sort(([a], [b]) => a.localeCompare(b));
    };

    expect(await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['a'] }))).toEqual([
      ['S1', ['a']],
      ['S2', ['a']],
      ['S3', ['a']],
    ]);
    expect(await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['b'], action: 'ADD' }))).toEqual([
      ['S1', ['a', 'b']],
      ['S2', ['a', 'b']],
      ['S3', ['a', 'b']],
    ]);
    const auditsBefore = (await api.audits()).totalCount;
    expect(await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['a', 'b'] }))).toEqual([]);
    expect(await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['a'], action: 'ADD' }))).toEqual(
      [],
    );
    expect(
      await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['zzz'], action: 'REMOVE' })),
    ).toEqual([]);
    expect((await api.audits()).totalCount).toBe(auditsBefore);

    // A recompute that leaves an employee's value as it was does not push to them.
    await api.whitelist({ user: { employeeNumber: 'S3' }, models: ['own'] });
    expect(await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['c'] }))).toEqual([
      ['S1', ['c']],
      ['S2', ['c']],
    ]);
    expect(
      await pushesAfter(() => api.whitelist({ departmentName: 'Sales', models: ['c'], action: 'REMOVE' })),
    ).toEqual([
      ['S1', []],
      ['S2', []],
    ]);
    expect(await notified('effective_permissions', 'notified_models', 'S1')).toBe('');
    expect(t.simulator.getEmployee('X1').models).toEqual([]);
    expect(t.simulator.calls({ route: 'setModels' }).every((call) => call.params.employee_number !== 'X1')).toBe(true);
  });

  it('an explicit false is pushed to employees the gateway was never told about; the same value again is not', async () => {
    await insertEmployees(t, [
      { number: 'E1', path: ['Corp', 'Ops'] },
      { number: 'E2', path: ['Corp', 'Ops'] },
    ]);
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E1' }, enabled: false });
    expect(starCheckPushes(t.simulator)).toEqual([['E1', false]]);
    expect(await notified('effective_star_check_settings', 'notified_enabled', 'E1')).toBe(false);

    t.simulator.clearCalls();
    const auditsBefore = (await api.audits()).totalCount;
    const again = await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E1' }, enabled: false });
    expect(again).toMatchObject({ kind: 'STAR_CHECK', targetType: 'USER', targetIdentifier: 'E1', enabled: false });
    expect(permissionCalls(t.simulator)).toEqual([]);
    expect((await api.audits()).totalCount).toBe(auditsBefore);

    // The department's false reaches E2 (never told) but not E1, whose own false already stands.
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'Ops', enabled: false });
    expect(starCheckPushes(t.simulator)).toEqual([['E2', false]]);
    t.simulator.clearCalls();
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'Ops', enabled: true });
    expect(starCheckPushes(t.simulator)).toEqual([['E2', true]]);
    expect(t.simulator.getEmployee('E2').starCheck).toBe(true);
  });

  it('a failed push is logged, leaves "last told" unchanged, and the next recompute pushes again', async () => {
    await insertEmployees(t, [{ number: 'F1', path: ['Corp', 'Eng'] }]);
    t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    const result = await api.whitelist({ departmentName: 'Eng', models: ['m1'] });
    expect(result).toMatchObject({ targetType: 'DEPARTMENT', targetIdentifier: 'Eng', models: ['m1'] });
    expect(t.simulator.calls({ route: 'setModels', outcome: 'fault' }).length).toBeGreaterThan(0);
    expect(t.simulator.getEmployee('F1').models).toEqual([]);
    expect(await notified('effective_permissions', 'notified_models', 'F1')).toBeNull();
    expect(await notified('effective_permissions', 'effective_models', 'F1')).toBe('m1');
    const failureLog = log
      .lines()
      .find((line) => String(line.msg).includes('gateway push of a permission failed') && line.employeeKey === 'F1');
    expect(failureLog).toMatchObject({ level: 40, kind: 'MODEL' });
    const recompute = (await api.audits({ targetIdentifier: 'F1', operation: 'permission_updated' })).nodes[0]!;
    expect(recompute.details).toMatchObject({ gatewayNotified: false, after: { value: ['m1'] } });
    expect(String(recompute.details?.gatewayError)).toContain('setModels');

    // The gateway is back; a recompute that does not change F1's value still owes the push.
    t.simulator.clearFaults();
    t.simulator.clearCalls();
    await api.whitelist({ departmentName: 'Corp', models: ['corp'] });
    expect(modelPushes(t.simulator)).toEqual([['F1', ['m1']]]);
    expect(await notified('effective_permissions', 'notified_models', 'F1')).toBe('m1');

    t.simulator.clearCalls();
    await api.whitelist({ departmentName: 'Corp', models: ['corp-2'] });
    expect(modelPushes(t.simulator)).toEqual([]);
  });

  it('a failed switch push is retried by the next recompute too', async () => {
    await insertEmployees(t, [{ number: 'F2', path: ['Corp'] }]);
    t.simulator.setFault('setQuotaCheck', { kind: 'drop' });
    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'F2' }, enabled: false });
    expect(await notified('effective_quota_check_settings', 'notified_enabled', 'F2')).toBeNull();
    t.simulator.clearFaults();
    t.simulator.clearCalls();
    // The department's true does not change F2's value (their own false wins), but the false is still owed.
    await api.switchOn({ kind: 'QUOTA_CHECK', departmentName: 'Corp', enabled: true });
    expect(quotaCheckPushes(t.simulator)).toEqual([['F2', false]]);
  });
});

describe('SET, ADD and REMOVE', () => {
  it('an empty list where none is configured is the value it already has: nothing stored, audited or pushed', async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp'] }]);
    t.simulator.clearCalls();
    const before = (await api.audits()).totalCount;
    expect((await api.whitelist({ departmentName: 'Corp', models: [] })).models).toEqual([]);
    expect((await api.whitelist({ departmentName: 'Corp', models: ['x'], action: 'REMOVE' })).models).toEqual([]);
    expect((await api.whitelist({ user: { employeeNumber: 'E1' }, models: [] })).models).toEqual([]);
    expect((await api.audits()).totalCount).toBe(before);
    const stored = await t.gql<{ modelWhitelist: unknown }>(
      'query { modelWhitelist(departmentName: "Corp") { models } }',
      {},
      { token: t.adminToken },
    );
    expect(stored.data?.modelWhitelist).toBeNull();
    expect(permissionCalls(t.simulator)).toEqual([]);
  });

  it('edit the list in order and return it; the stored setting reads back the same', async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp'] }]);
    const user = { employeeNumber: 'E1' };
    expect(await api.whitelist({ user, models: [' gpt-4o ', 'claude', 'gpt-4o'] })).toMatchObject({
      targetType: 'USER',
      targetIdentifier: 'E1',
      models: ['gpt-4o', 'claude'],
    });
    expect((await api.whitelist({ user, models: ['qwen', 'gpt-4o'], action: 'ADD' })).models).toEqual([
      'gpt-4o',
      'claude',
      'qwen',
    ]);
    expect((await api.whitelist({ user, models: ['claude', 'unknown'], action: 'REMOVE' })).models).toEqual([
      'gpt-4o',
      'qwen',
    ]);
    const set = await api.whitelist({ user, models: ['deepseek'] });
    expect(set.models).toEqual(['deepseek']);
    expect(typeof set.updatedAt).toBe('string');

    const read = await t.gql<{ modelWhitelist: unknown }>(
      'query { modelWhitelist(user: { employeeNumber: "E1" }) { targetType targetIdentifier models updatedAt } }',
      {},
      { token: t.adminToken },
    );
    expect(read.data?.modelWhitelist).toEqual(set);
    expect(modelPushes(t.simulator).map(([, models]) => models)).toEqual([
      ['gpt-4o', 'claude'],
      ['gpt-4o', 'claude', 'qwen'],
      ['gpt-4o', 'qwen'],
      ['deepseek'],
    ]);
  });

  it('an ADD that would exceed 50 names is refused and changes nothing', async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp'] }]);
    const fifty = Array.from({ length: 50 }, (_, i) => `model-${i}`);
    await api.whitelist({ departmentName: 'Corp', models: fifty });
    t.simulator.clearCalls();
    const before = (await api.audits()).totalCount;
    const response = await api.setWhitelist({ departmentName: 'Corp', models: ['one-more'], action: 'ADD' });
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await api.audits()).totalCount).toBe(before);
    expect(permissionCalls(t.simulator)).toEqual([]);
    expect((await api.effective('MODEL', 'USER', 'E1')).models).toEqual(fifty);
  });
});

describe('employee key', () => {
  it('a user is addressed by user id or employee number and always shown by employee key', async () => {
    await insertEmployees(t, [{ number: 'E7', path: ['Corp'] }]);
    await insertUsers(t, [{ id: 'user-7', employeeNumber: 'E7' }]);
    const set = await api.whitelist({ user: { userId: 'user-7' }, models: ['m'] });
    expect(set).toMatchObject({ targetType: 'USER', targetIdentifier: 'E7' });
    expect(modelPushes(t.simulator)).toEqual([['E7', ['m']]]);
    expect(await api.effective('MODEL', 'USER', 'user-7')).toMatchObject({
      targetIdentifier: 'E7',
      models: ['m'],
      source: 'USER',
      sourceIdentifier: 'E7',
    });
    const setting = await api.switchOn({ kind: 'STAR_CHECK', user: { userId: 'user-7' }, enabled: true });
    expect(setting.targetIdentifier).toBe('E7');
    expect(starCheckPushes(t.simulator)).toEqual([['E7', true]]);
  });
});

describe('queries', () => {
  it('modelWhitelist and switchSetting return the explicit setting or null', async () => {
    await insertEmployees(t, [{ number: 'E1', path: ['Corp', 'R&D'] }]);
    await api.whitelist({ departmentName: 'Corp', models: ['corp'] });
    await api.switchOn({ kind: 'QUOTA_CHECK', departmentName: 'R&D', enabled: true });
    const query = `query($user: UserRef, $dept: String, $kind: PermissionKind!) {
      modelWhitelist(user: $user, departmentName: $dept) { targetType targetIdentifier models }
      switchSetting(kind: $kind, user: $user, departmentName: $dept) { kind targetType targetIdentifier enabled }
    }`;
    const read = async (variables: Record<string, unknown>) =>
      (await t.gql<Record<string, unknown>>(query, variables, { token: t.adminToken })).data;
    expect(await read({ dept: 'Corp', kind: 'QUOTA_CHECK' })).toEqual({
      modelWhitelist: { targetType: 'DEPARTMENT', targetIdentifier: 'Corp', models: ['corp'] },
      switchSetting: null,
    });
    expect(await read({ dept: 'R&D', kind: 'QUOTA_CHECK' })).toEqual({
      modelWhitelist: null,
      switchSetting: { kind: 'QUOTA_CHECK', targetType: 'DEPARTMENT', targetIdentifier: 'R&D', enabled: true },
    });
    expect(await read({ user: { employeeNumber: 'E1' }, kind: 'STAR_CHECK' })).toEqual({
      modelWhitelist: null,
      switchSetting: null,
    });
  });

  it('permissionAudits lists setting changes and recomputes, newest first, filtered and paged', async () => {
    await insertEmployees(t, [
      { number: 'A1', path: ['Corp', 'Ops'] },
      { number: 'A2', path: ['Corp', 'Ops'] },
    ]);
    await api.whitelist({ departmentName: 'Ops', models: ['m1'] });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'A1' }, enabled: true });

    const all = await api.audits();
    expect(all.totalCount).toBe(5);
    expect(all.nodes.map((node) => [node.operation, node.targetType, node.targetIdentifier])).toEqual([
      ['star_check_setting_update', 'USER', 'A1'],
      ['star_check_set', 'USER', 'A1'],
      ['permission_updated', 'USER', 'A2'],
      ['permission_updated', 'USER', 'A1'],
      ['whitelist_set', 'DEPARTMENT', 'Ops'],
    ]);
    const ids = all.nodes.map((node) => Number(node.id));
    expect([...ids].sort((a, b) => b - a)).toEqual(ids);

    const setting = all.nodes[4]!;
    expect(setting.details).toMatchObject({
      kind: 'MODEL',
      action: 'SET',
      actor: 'admin-1',
      before: null,
      after: ['m1'],
      employeesRecomputed: 2,
      gatewayNotified: true,
      gateway: { pushed: 2, failed: 0, skipped: 0 },
    });
    expect(all.nodes[3]!.details).toMatchObject({
      kind: 'MODEL',
      before: null,
      after: { value: ['m1'], source: 'department', sourceIdentifier: 'Ops' },
      gatewayNotified: true,
      pushedValue: ['m1'],
      cause: { operation: 'whitelist_set', targetType: 'department', targetIdentifier: 'Ops' },
    });
    expect(new Date(setting.createdAt).getTime()).not.toBeNaN();

    const forA1 = await api.audits({ targetIdentifier: 'A1' });
    expect(forA1.nodes.map((node) => node.operation)).toEqual([
      'star_check_setting_update',
      'star_check_set',
      'permission_updated',
    ]);
    expect((await api.audits({ operation: 'whitelist_set' })).totalCount).toBe(1);

    const first = await api.audits({ first: 2 });
    expect(first.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    const second = await api.audits({ first: 2, after: first.pageInfo.endCursor });
    expect(second.nodes.map((node) => node.id)).toEqual(all.nodes.slice(2, 4).map((node) => node.id));
    expect((await api.audits({ first: 2, offset: 4 })).nodes.map((node) => node.id)).toEqual([all.nodes[4]!.id]);

    // Filtered and paged by cursor while new audits for the same target arrive on top: no repeats.
    const a1Page = await api.audits({ targetIdentifier: 'A1', first: 1 });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'A1' }, enabled: false });
    const a1Next = await api.audits({ targetIdentifier: 'A1', first: 1, after: a1Page.pageInfo.endCursor });
    expect(a1Next.nodes.map((node) => node.id)).toEqual([forA1.nodes[1]!.id]);
    expect(a1Next.totalCount).toBe(5);
  });
});
