import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermissionKind } from '../../src/modules/permissions/permission.enums.js';
import { MODEL_SPEC, QUOTA_CHECK_SPEC } from '../../src/modules/permissions/permission-kinds.js';
import { PUSH_CONCURRENCY } from '../../src/modules/permissions/permission-pusher.js';
import { OWED_PUSH_RETRY } from '../../src/modules/permissions/permission-recompute.js';
import { lockPermissions } from '../../src/modules/permissions/permission-store.js';
import { applySettingChange } from '../../src/modules/permissions/setting-change.js';
import { emp, type HrTestContext, SMALL_EMPLOYEES, startHrTestApp } from '../employees/hr-support.js';
import {
  modelPushes,
  permissionApi,
  permissionCalls,
  quotaCheckPushes,
  resetPermissionScene,
  starCheckPushes,
  syncEmployees,
} from './permission-support.js';

/**
 * SPEC §6 ("a failed push leaves last told unchanged, so the next recompute pushes again; the
 * database keeps the intended state"): after every employee sync, each effective record whose push
 * the rules still owe is pushed — a recompute's push that failed, or one lost between its commit
 * and its push. End to end: HR simulator → sync → gateway simulator.
 */

let hr: HrTestContext;
let api: ReturnType<typeof permissionApi>;

beforeAll(async () => {
  hr = await startHrTestApp('permission_owed_push_retry');
  api = permissionApi(hr.t);
});

afterAll(async () => {
  await hr?.stop();
});

beforeEach(async () => {
  await resetPermissionScene(hr, SMALL_EMPLOYEES);
});

afterEach(() => {
  hr.t.simulator.clearFaults();
});

function syncWith(employees: typeof SMALL_EMPLOYEES) {
  return syncEmployees(hr, employees);
}

/** What the gateway was last told about an employee, per kind, and whether it may hold something else. */
async function lastTold(key: string) {
  const rows = await hr.em().execute<{ kind: string; notified: string | boolean | null; uncertain: boolean }[]>(
    `select 'MODEL' as kind, to_jsonb(notified_models) as notified, notified_uncertain as uncertain
       from effective_permissions where employee_number = ?
     union all select 'STAR_CHECK', to_jsonb(notified_enabled), notified_uncertain
       from effective_star_check_settings where employee_number = ?
     union all select 'QUOTA_CHECK', to_jsonb(notified_enabled), notified_uncertain
       from effective_quota_check_settings where employee_number = ?`,
    [key, key, key],
  );
  const of = (kind: string) => rows.find((row) => row.kind === kind);
  return {
    models: of('MODEL')?.notified ?? null,
    starCheck: of('STAR_CHECK')?.notified ?? null,
    quotaCheck: of('QUOTA_CHECK')?.notified ?? null,
    uncertain: Object.fromEntries(rows.map((row) => [row.kind, row.uncertain])),
  };
}

/** The audit rows of the backstop's pushes for this key (newest first). */
async function retryAudits(key: string) {
  const audits = await api.audits({ targetIdentifier: key });
  return audits.nodes.filter(
    (node) => (node.details?.cause as { operation?: string } | undefined)?.operation === OWED_PUSH_RETRY,
  );
}

describe('pushes owed after a recompute (the employee sync backstop)', () => {
  it('a recompute push that failed is sent by the next unchanged sync, and last told is updated', async () => {
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    hr.t.simulator.setFault('setStarCheck', { kind: 'status', status: 503 });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1', 'm2'] });
    // An explicit false, never told: owed for a switch (SPEC §6).
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E003' }, enabled: false });
    expect(hr.t.simulator.getEmployee('E001').models).toEqual([]);
    expect(await lastTold('E001')).toMatchObject({ models: null });
    expect(await lastTold('E003')).toMatchObject({ starCheck: null });
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    const result = await syncWith(SMALL_EMPLOYEES);
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [] });

    expect(modelPushes(hr.t.simulator)).toEqual([['E001', ['m1', 'm2']]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E003', false]]);
    expect(quotaCheckPushes(hr.t.simulator)).toEqual([]);
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1', 'm2']);
    expect(await lastTold('E001')).toMatchObject({ models: 'm1,m2' });
    expect(await lastTold('E003')).toMatchObject({ starCheck: false });
    const [retried] = await retryAudits('E001');
    expect(retried).toMatchObject({ operation: MODEL_SPEC.recomputeOperation });
    expect(retried?.details).toMatchObject({
      kind: 'MODEL',
      lastNotified: null,
      changed: false,
      gatewayNotified: true,
      pushedValue: ['m1', 'm2'],
    });

    // Told once: the next sync owes nothing, so it sends nothing and audits nothing.
    hr.t.simulator.clearCalls();
    await syncWith(SMALL_EMPLOYEES);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
    expect(await retryAudits('E001')).toHaveLength(1);
  });

  it('an owed push of an employee the sync itself recomputes (renamed) is sent once, by the recompute', async () => {
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    const renamed = SMALL_EMPLOYEES.map((employee) =>
      employee.badge === 'E001' ? { ...employee, Name: `${employee.Name} Renamed` } : employee,
    );
    const result = await syncWith(renamed);
    expect(result.changes.renamed).toEqual(['E001']);
    // The recompute owes it too, so the backstop leaves it out: one push, and no retry audit.
    expect(modelPushes(hr.t.simulator)).toEqual([['E001', ['m1']]]);
    expect(await retryAudits('E001')).toEqual([]);
    expect(await lastTold('E001')).toMatchObject({ models: 'm1' });
  });

  it('a push still failing at the sync stays owed; its audit row records the failure', async () => {
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    await syncWith(SMALL_EMPLOYEES);
    const [failed] = await retryAudits('E001');
    expect(failed?.details).toMatchObject({ gatewayNotified: false, gatewayError: expect.any(String) });
    expect(await lastTold('E001')).toMatchObject({ models: null });

    hr.t.simulator.clearFaults();
    await syncWith(SMALL_EMPLOYEES);
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1']);
    expect(await lastTold('E001')).toMatchObject({ models: 'm1' });
  });

  it('a gateway failing every push of a wave: the rest of the backlog waits for the next sync (audited as deferred)', async () => {
    // 4 employees × 3 kinds owed: department settings on the root while every gateway call fails.
    hr.t.simulator.setFault('*', { kind: 'status', status: 503 });
    await api.whitelist({ departmentName: 'Corp', models: ['m'] });
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'Corp', enabled: true });
    await api.switchOn({ kind: 'QUOTA_CHECK', departmentName: 'Corp', enabled: true });
    hr.t.simulator.clearCalls();

    await syncWith(SMALL_EMPLOYEES);
    // One wave (PUSH_CONCURRENCY = 8) was tried, every attempt of it failed, and the other 4 were not sent.
    const tried = new Set(
      permissionCalls(hr.t.simulator).map((call) => `${call.route}:${call.params.employee_number}`),
    );
    expect(tried.size).toBe(PUSH_CONCURRENCY);
    const audits = (await api.audits({})).nodes.filter(
      (node) => (node.details?.cause as { operation?: string } | undefined)?.operation === OWED_PUSH_RETRY,
    );
    expect(audits).toHaveLength(12);
    expect(audits.filter((node) => node.details?.deferred !== undefined)).toHaveLength(12 - PUSH_CONCURRENCY);
    expect(audits.filter((node) => node.details?.gatewayError !== undefined)).toHaveLength(PUSH_CONCURRENCY);

    // The gateway is back: the next sync sends all 12.
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();
    await syncWith(SMALL_EMPLOYEES);
    expect(permissionCalls(hr.t.simulator)).toHaveLength(12);
    for (const key of ['E001', 'E002', 'E003', 'E004']) {
      expect(hr.t.simulator.getEmployee(key), key).toMatchObject({ models: ['m'], starCheck: true, quotaCheck: true });
    }
  });

  it('a setting change committed but never pushed (the process died) is pushed by the next sync', async () => {
    const permissions = hr.t.app.services.permissions;
    // The change's transaction as the service runs it; the process "dies" before the push.
    await hr.t.app.services.orm.em.fork().transactional(async (tx) => {
      await lockPermissions(tx);
      const now = permissions.clock.now();
      await applySettingChange(tx, permissions.subjects, {
        spec: MODEL_SPEC,
        targetType: 'department',
        targetIdentifier: 'Sales',
        nextValue: () => ['sales-model'],
        actor: 'admin',
        now,
      });
      await applySettingChange(tx, permissions.subjects, {
        spec: QUOTA_CHECK_SPEC,
        targetType: 'user',
        targetIdentifier: 'E004',
        nextValue: () => false,
        actor: 'admin',
        now,
      });
    });
    expect(permissionCalls(hr.t.simulator)).toEqual([]);

    await syncWith(SMALL_EMPLOYEES);

    expect(modelPushes(hr.t.simulator)).toEqual([['E002', ['sales-model']]]);
    expect(quotaCheckPushes(hr.t.simulator)).toEqual([['E004', false]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([]);
    expect(await lastTold('E002')).toMatchObject({ models: 'sales-model' });
    expect(await lastTold('E004')).toMatchObject({ quotaCheck: false });
    expect((await retryAudits('E004'))[0]?.details).toMatchObject({
      kind: PermissionKind.QUOTA_CHECK,
      gatewayNotified: true,
      pushedValue: false,
    });
  });

  it('a sync whose recompute fails changes nothing; the next one mirrors, recomputes and sends what is owed', async () => {
    await api.whitelist({ user: { employeeNumber: 'E002' }, models: ['own'] });
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    // E002's removal push fails too: it stays in permission_removal_push.
    const without = SMALL_EMPLOYEES.filter((employee) => employee.badge !== 'E002');
    await syncWith(without);
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    // A real database failure in the next sync's recompute: a new employee's effective record
    // cannot be written. The recompute runs in the sync's transaction, so the sync fails whole: the
    // mirror does not get E009 (it would otherwise have E009 with no effective records, and later
    // syncs would see nothing to recompute).
    const em = hr.em();
    await em.execute(`create or replace function refuse_e009() returns trigger language plpgsql as $$
      begin if new.employee_number = 'E009' then raise exception 'refused for the test'; end if; return new; end $$`);
    await em.execute(`create trigger refuse_e009 before insert on effective_permissions
      for each row execute function refuse_e009()`);
    const withNewHire = [...without, emp('E009', 'New Hire', 3)];
    try {
      await expect(syncWith(withNewHire)).rejects.toThrow(/^HR_SYNC_FAILED/);
      expect(await em.execute(`select 1 from employee_department where employee_number = 'E009'`)).toEqual([]);
      expect(permissionCalls(hr.t.simulator)).toEqual([]);
    } finally {
      await em.execute('drop trigger if exists refuse_e009 on effective_permissions');
      await em.execute('drop function if exists refuse_e009()');
    }

    // The next sync does it all: E009 mirrored and recomputed, and what earlier syncs left owed sent.
    const result = await syncWith(withNewHire);
    expect(result.changes.added).toEqual(['E009']);
    expect(await em.execute(`select 1 from effective_permissions where employee_number = 'E009'`)).toHaveLength(1);
    expect(
      modelPushes(hr.t.simulator)
        .filter(([key]) => key !== 'E009')
        .sort(),
    ).toEqual([
      ['E001', ['m1']],
      ['E002', []],
    ]);
    expect(await hr.em().execute('select * from permission_removal_push')).toEqual([]);
  });
});

/**
 * A push whose every attempt may have landed (the answer was lost) leaves the gateway holding an
 * unknown value: "last told" stays as it was (SPEC §6), and the record is marked uncertain, so the
 * next recompute or sync pushes whatever the value is then — even a value equal to "last told".
 */
describe('a push that failed ambiguously', () => {
  it('a whitelist set back to what the gateway was last told is pushed again', async () => {
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    expect(await lastTold('E001')).toMatchObject({ models: 'm1' });
    // Every attempt reaches the gateway and then loses its answer: it now holds m1,m2.
    hr.t.simulator.setFault('setModels', { kind: 'applied-then-drop' });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1', 'm2'] });
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1', 'm2']);
    expect(await lastTold('E001')).toMatchObject({ models: 'm1' });
    expect((await lastTold('E001')).uncertain).toMatchObject({ MODEL: true });
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });

    expect(modelPushes(hr.t.simulator)).toEqual([['E001', ['m1']]]);
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1']);
    expect((await lastTold('E001')).uncertain).toMatchObject({ MODEL: false });
    // Certain again: the same value once more sends nothing.
    hr.t.simulator.clearCalls();
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    await syncWith(SMALL_EMPLOYEES);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });

  it('quota check switched back on after an ambiguous "off" is pushed again (the gateway does not stay off)', async () => {
    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'E004' }, enabled: true });
    hr.t.simulator.setFault('setQuotaCheck', { kind: 'applied-then-drop' });
    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'E004' }, enabled: false });
    expect(hr.t.simulator.getEmployee('E004').quotaCheck).toBe(false);
    expect(await lastTold('E004')).toMatchObject({ quotaCheck: true });
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'E004' }, enabled: true });

    expect(quotaCheckPushes(hr.t.simulator)).toEqual([['E004', true]]);
    expect(hr.t.simulator.getEmployee('E004').quotaCheck).toBe(true);
  });

  it('an uncertain record whose value equals last told is pushed by the next sync (the backstop)', async () => {
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    hr.t.simulator.setFault('setModels', { kind: 'applied-then-drop' });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1', 'm2'] });
    // Set back while the gateway still answers nothing (and applies nothing): it keeps m1,m2.
    hr.t.simulator.setFault('setModels', { kind: 'drop' });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1', 'm2']);
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    await syncWith(SMALL_EMPLOYEES);

    expect(modelPushes(hr.t.simulator)).toEqual([['E001', ['m1']]]);
    expect(hr.t.simulator.getEmployee('E001').models).toEqual(['m1']);
    expect((await retryAudits('E001'))[0]?.details).toMatchObject({
      lastNotified: ['m1'],
      lastNotifiedUncertain: true,
      gatewayNotified: true,
      pushedValue: ['m1'],
    });
    expect((await lastTold('E001')).uncertain).toMatchObject({ MODEL: false });
  });

  it('a refusal the gateway answered (nothing applied) leaves the record certain', async () => {
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 400 });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1', 'm2'] });
    expect((await lastTold('E001')).uncertain).toMatchObject({ MODEL: false });
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['m1'] });
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });
});
