import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EntityManager } from '../../src/db/orm.js';
import { silentLogger } from '../../src/logger.js';
import type { EmployeeChanges } from '../../src/modules/employees/employee-change-listener.js';
import { PermissionSyncListener } from '../../src/modules/permissions/permission-sync-listener.js';
import { emp, type HrTestContext, SMALL_EMPLOYEES, startHrTestApp } from '../employees/hr-support.js';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  insertEmployees,
  modelPushes,
  PERMISSION_TABLES,
  permissionApi,
  permissionCalls,
  quotaCheckPushes,
  starCheckPushes,
} from './permission-support.js';

/**
 * Employee sync's hook (SPEC §7): what happens to permissions when HR adds, moves, renames and
 * removes employees. First driven by hand (the mirror change and the hook calls, as the sync makes
 * them), then end to end through the real sync against the HR simulator.
 */

describe('PermissionSyncListener', () => {
  let t: TestApp;
  let api: ReturnType<typeof permissionApi>;
  let listener: PermissionSyncListener;

  const changes = (partial: Partial<EmployeeChanges>): EmployeeChanges => ({
    added: [],
    moved: [],
    renamed: [],
    removed: [],
    ...partial,
  });

  /** One "sync": mirror writes and beforeCommit in one transaction, afterCommit after it. */
  async function sync(change: EmployeeChanges, writeMirror: (em: EntityManager) => Promise<unknown> = async () => {}) {
    await t.app.services.orm.em.fork().transactional(async (em) => {
      await writeMirror(em);
      await listener.beforeCommit(em, change);
    });
    await listener.afterCommit(t.app.services.orm.em.fork(), change);
  }

  const execute = (sql: string, params: unknown[] = []) =>
    t.app.services.orm.em.fork().execute<Record<string, unknown>[]>(sql, params);

  beforeAll(async () => {
    t = await startTestApp({ label: 'permission_sync_listener', env: { HR_SYNC_ENABLED: 'true' } });
    api = permissionApi(t);
    listener = new PermissionSyncListener(t.app.services.permissions);
  });

  afterAll(async () => {
    await t?.stop();
  });

  beforeEach(async () => {
    await execute(
      `truncate ${[...PERMISSION_TABLES, 'permission_removal_push', 'employee_department'].join(', ')} restart identity`,
    );
    t.simulator.reset();
  });

  it('a new employee with nothing applicable gets default records and no push', async () => {
    await insertEmployees(t, [{ number: 'N1', path: ['Corp', 'Ops'] }]);
    await sync(changes({ added: ['N1'] }));
    expect(permissionCalls(t.simulator)).toEqual([]);
    for (const table of ['effective_permissions', 'effective_star_check_settings', 'effective_quota_check_settings']) {
      const rows = await execute(
        `select source, ${table === 'effective_permissions' ? 'notified_models' : 'notified_enabled'} as told from ${table}`,
      );
      expect(rows).toEqual([{ source: 'default', told: null }]);
    }
    const audits = await api.audits({ targetIdentifier: 'N1' });
    expect(audits.nodes.map((node) => node.operation).sort()).toEqual([
      'permission_updated',
      'quota_check_setting_update',
      'star_check_setting_update',
    ]);
    expect(audits.nodes.every((node) => node.details?.gatewayNotified === false)).toBe(true);
    expect(audits.nodes[0]!.details).toMatchObject({ cause: { operation: 'employee_sync' }, actor: null });
  });

  it('new employees under configured departments are pushed what applies to them', async () => {
    await insertEmployees(t, [{ number: 'OLD', path: ['Corp', 'Sales'] }]);
    await api.whitelist({ departmentName: 'Sales', models: ['sales'] });
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'Corp', enabled: true });
    t.simulator.clearCalls();
    await insertEmployees(t, [
      { number: 'N1', path: ['Corp', 'Sales'] },
      { number: 'N2', path: ['Corp', 'Sales', 'East'] },
      { number: 'N3', path: ['Corp', 'Sales'] },
    ]);
    await sync(changes({ added: ['N1', 'N2', 'N3'] }));
    expect(modelPushes(t.simulator).sort()).toEqual([
      ['N1', ['sales']],
      ['N2', ['sales']],
      ['N3', ['sales']],
    ]);
    expect(starCheckPushes(t.simulator).sort()).toEqual([
      ['N1', true],
      ['N2', true],
      ['N3', true],
    ]);
    expect(quotaCheckPushes(t.simulator)).toEqual([]);
  });

  it('a move deletes the personal whitelist (switches stay) and pushes the new department value', async () => {
    await insertEmployees(t, [
      { number: 'M1', path: ['Corp', 'Sales'] },
      { number: 'M2', path: ['Corp', 'Eng'] },
    ]);
    await api.whitelist({ departmentName: 'Eng', models: ['eng'] });
    await api.whitelist({ user: { employeeNumber: 'M1' }, models: ['own'] });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'M1' }, enabled: true });
    t.simulator.clearCalls();

    await sync(changes({ moved: ['M1'] }), (em) =>
      em.execute(`update employee_department set dept_full_level_names = 'Corp,Eng' where employee_number = 'M1'`),
    );
    expect(await execute(`select * from model_whitelist where target_type = 'user'`)).toEqual([]);
    expect(await execute(`select enabled from star_check_settings where target_identifier = 'M1'`)).toEqual([
      { enabled: true },
    ]);
    expect(modelPushes(t.simulator)).toEqual([['M1', ['eng']]]);
    expect(starCheckPushes(t.simulator)).toEqual([]);
    expect(await api.effective('MODEL', 'USER', 'M1')).toMatchObject({ models: ['eng'], sourceIdentifier: 'Eng' });
    const cleared = (await api.audits({ operation: 'whitelist_cleared' })).nodes;
    expect(cleared).toHaveLength(1);
    expect(cleared[0]).toMatchObject({
      targetIdentifier: 'M1',
      details: { reason: 'department_change', before: ['own'] },
    });
  });

  it('a rename is recomputed but pushes nothing when nothing changed', async () => {
    await insertEmployees(t, [{ number: 'R1', path: ['Corp'] }]);
    await api.whitelist({ departmentName: 'Corp', models: ['corp'] });
    t.simulator.clearCalls();
    const auditsBefore = (await api.audits()).totalCount;
    await sync(changes({ renamed: ['R1'] }), (em) =>
      em.execute(`update employee_department set username = 'New Name' where employee_number = 'R1'`),
    );
    expect(permissionCalls(t.simulator)).toEqual([]);
    expect((await api.audits()).totalCount).toBe(auditsBefore + 3);
  });

  it('removal deletes settings and records and pushes [] models and star check false only where the gateway had them', async () => {
    await insertEmployees(t, [
      { number: 'X1', path: ['Corp', 'Eng'] },
      { number: 'X2', path: ['Corp', 'Ops'] },
      { number: 'X3', path: ['Corp', 'Eng'] },
      { number: 'KEEP', path: ['Corp', 'Eng'] },
    ]);
    await api.whitelist({ departmentName: 'Eng', models: ['eng'] });
    await api.whitelist({ user: { employeeNumber: 'X1' }, models: ['own'] });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'X1' }, enabled: true });
    await api.switchOn({ kind: 'QUOTA_CHECK', user: { employeeNumber: 'X1' }, enabled: true });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'X3' }, enabled: false });
    // X3's models were told and then cleared: the gateway holds [] for them already.
    await api.whitelist({ user: { employeeNumber: 'X3' }, models: ['x3'] });
    await api.whitelist({ departmentName: 'Eng', models: ['eng'], action: 'REMOVE' });
    await api.whitelist({ user: { employeeNumber: 'X3' }, models: ['x3'], action: 'REMOVE' });
    expect(t.simulator.getEmployee('X3').models).toEqual([]);
    // X2 was never told anything (no setting ever applied to them).
    await sync(changes({ added: ['X2'] }));
    t.simulator.clearCalls();

    const removed = ['X1', 'X2', 'X3'];
    await sync(changes({ removed: removed.map((employeeNumber) => ({ employeeNumber })) }), (em) =>
      em.execute(`delete from employee_department where employee_number in ('X1', 'X2', 'X3')`),
    );
    expect(modelPushes(t.simulator)).toEqual([['X1', []]]);
    expect(starCheckPushes(t.simulator)).toEqual([['X1', false]]);
    expect(quotaCheckPushes(t.simulator)).toEqual([]);
    expect(t.simulator.getEmployee('X1')).toMatchObject({ models: [], starCheck: false });
    expect(await execute('select * from permission_removal_push')).toEqual([]);

    for (const table of PERMISSION_TABLES.filter((name) => name !== 'permission_audit')) {
      const column = table.startsWith('effective') ? 'employee_number' : 'target_identifier';
      expect(await execute(`select ${column} from ${table} where ${column} in ('X1', 'X2', 'X3')`)).toEqual([]);
    }
    expect(await execute(`select employee_number from effective_permissions`)).toEqual([{ employee_number: 'KEEP' }]);
    const removals = (await api.audits({ operation: 'employee_removed' })).nodes;
    expect(removals.map((node) => node.targetIdentifier).sort()).toEqual(removed);
    expect(removals.find((node) => node.targetIdentifier === 'X1')?.details).toMatchObject({
      removedSettings: { MODEL: ['own'], STAR_CHECK: true, QUOTA_CHECK: true },
      lastNotified: { MODEL: ['own'], STAR_CHECK: true },
    });
    const pushAudits = (await api.audits({ targetIdentifier: 'X1', first: 2 })).nodes;
    expect(pushAudits.map((node) => node.details?.gatewayNotified)).toEqual([true, true]);
  });

  it('a sync that rolls back after beforeCommit changes nothing and pushes nothing', async () => {
    await insertEmployees(t, [{ number: 'B1', path: ['Corp', 'Sales'] }]);
    await api.whitelist({ user: { employeeNumber: 'B1' }, models: ['own'] });
    t.simulator.clearCalls();
    const before = await execute('select * from model_whitelist');
    const change = changes({ moved: ['B1'], removed: [{ employeeNumber: 'B1' }] });
    await expect(
      t.app.services.orm.em.fork().transactional(async (em) => {
        await listener.beforeCommit(em, change);
        throw new Error('HR_SYNC_FAILED: refused');
      }),
    ).rejects.toThrow('refused');
    expect(await execute('select * from model_whitelist')).toEqual(before);
    expect(await execute(`select employee_number from effective_permissions`)).toEqual([{ employee_number: 'B1' }]);
    expect(await execute('select * from permission_removal_push')).toEqual([]);
    expect(permissionCalls(t.simulator)).toEqual([]);
  });
});

describe('employee sync end to end', () => {
  let hr: HrTestContext;
  let api: ReturnType<typeof permissionApi>;

  beforeAll(async () => {
    hr = await startHrTestApp('permission_sync_e2e');
    api = permissionApi(hr.t);
  });

  afterAll(async () => {
    await hr?.stop();
  });

  it('recomputes and pushes for added, moved and removed employees', async () => {
    const { t } = hr;
    await hr.sync.sync(t.app.services.orm, silentLogger());
    expect(permissionCalls(t.simulator)).toEqual([]);

    // E001 Platform, E003 R&D and E004 Apps are under R&D; E002 is in Sales.
    await api.whitelist({ departmentName: 'R&D', models: ['rd'] });
    await api.whitelist({ user: { employeeNumber: 'E001' }, models: ['own'] });
    await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E002' }, enabled: true });
    t.simulator.clearCalls();

    hr.hr.setFixture({
      employees: [
        emp('E001', 'Li Lei', 4), // moved from Platform to Sales
        ...SMALL_EMPLOYEES.filter((employee) => !['E001', 'E002'].includes(employee.badge)), // E002 removed
        emp('E005', 'Zhao Lei', 3), // added to Platform
      ],
    });
    await hr.sync.sync(t.app.services.orm, silentLogger());

    expect(modelPushes(t.simulator).sort()).toEqual([
      ['E001', []],
      ['E005', ['rd']],
    ]);
    expect(starCheckPushes(t.simulator)).toEqual([['E002', false]]);
    expect(quotaCheckPushes(t.simulator)).toEqual([]);
    expect(await api.effective('MODEL', 'USER', 'E005')).toMatchObject({ models: ['rd'], sourceIdentifier: 'R&D' });
    const personal = await t.gql(
      'query { modelWhitelist(user: { employeeNumber: "E001" }) { models } }',
      {},
      { token: t.adminToken },
    );
    expect(personal.data).toEqual({ modelWhitelist: null });
  });
});
