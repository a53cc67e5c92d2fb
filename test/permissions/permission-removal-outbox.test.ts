import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermissionSyncListener } from '../../src/modules/permissions/permission-sync-listener.js';
import { type HrTestContext, SMALL_EMPLOYEES, startHrTestApp } from '../employees/hr-support.js';
import { advisoryLockWaiters } from '../support/database.js';
import { until } from '../support/until.js';
import {
  errorCode,
  modelPushes,
  permissionApi,
  permissionCalls,
  resetPermissionScene,
  starCheckPushes,
  syncEmployees,
} from './permission-support.js';

/**
 * SPEC §7 + §6: the pushes owed for employees that employee sync removes (`[]` models, star-check
 * `false`) live in the permission_removal_push outbox, written in the sync's transaction; a failed
 * one stays there and is sent again after the next sync, and one for an employee HR brings back is
 * dropped in favour of their recompute. End to end: HR simulator → sync → gateway simulator.
 */

let hr: HrTestContext;
let api: ReturnType<typeof permissionApi>;

/** E002 (Han Meimei) is in Corp/Sales; the rest of SMALL_EMPLOYEES stays in every feed. */
const WITHOUT_E002 = SMALL_EMPLOYEES.filter((employee) => employee.badge !== 'E002');
const WITH_E002 = SMALL_EMPLOYEES;

beforeAll(async () => {
  // A gateway timeout longer than any test: the race tests hold a push at the simulator until they
  // release it, and a client that gave up and retried would not be the race they set up.
  hr = await startHrTestApp('permission_removal_outbox', { env: { AIGATEWAY_TIMEOUT_MS: '60000' } });
  api = permissionApi(hr.t);
});

afterAll(async () => {
  await hr?.stop();
});

beforeEach(async () => {
  await resetPermissionScene(hr, WITH_E002);
});

afterEach(() => {
  hr.t.simulator.clearFaults();
  // A test that failed while a push was held must not leave it holding its locks into the next test.
  hr.t.simulator.release();
});

function syncWith(employees: typeof SMALL_EMPLOYEES) {
  return syncEmployees(hr, employees);
}

/** The next sync the way an operator starts it: triggerScan(EMPLOYEE_SYNC), waited for. */
async function triggerSync(): Promise<{ status: string; error: string | null }> {
  const response = await hr.t.gql<{ triggerScan: { id: string } }>(
    'mutation { triggerScan(type: EMPLOYEE_SYNC) { id } }',
    {},
    { token: hr.t.adminToken },
  );
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  const { id } = response.data.triggerScan;
  await hr.t.app.services.jobs.runner.waitFor(id);
  const run = await hr.t.gql<{ jobRun: { status: string; error: string | null } }>(
    'query($id: ID!) { jobRun(id: $id) { status error } }',
    { id },
    { token: hr.t.adminToken },
  );
  return run.data!.jobRun;
}

async function outbox() {
  return hr
    .em()
    .execute<{ kind: string; employee_key: string; push_value: unknown; last_notified: unknown }[]>(
      'select kind, employee_key, push_value, last_notified from permission_removal_push order by kind, employee_key',
    );
}

/** The audit rows of the pushes owed for a removal (newest first). */
async function removalPushAudits(key: string) {
  const audits = await api.audits({ targetIdentifier: key });
  return audits.nodes.filter(
    (node) => (node.details?.cause as { operation?: string } | undefined)?.operation === 'employee_removed',
  );
}

/** E002 gets a personal whitelist and star check on, and the gateway is told both. */
async function giveE002ModelsAndStarCheck() {
  await api.whitelist({ user: { employeeNumber: 'E002' }, models: ['own-a', 'own-b'] });
  await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E002' }, enabled: true });
  expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: ['own-a', 'own-b'], starCheck: true });
  hr.t.simulator.clearCalls();
}

function failPermissionPushes() {
  hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
  hr.t.simulator.setFault('setStarCheck', { kind: 'status', status: 503 });
}

describe('pushes owed for removed employees (permission_removal_push)', () => {
  it('a removal push that succeeds leaves [] / false on the gateway and nothing in the outbox', async () => {
    await giveE002ModelsAndStarCheck();
    const result = await syncWith(WITHOUT_E002);
    expect(result.changes.removed).toEqual([{ employeeNumber: 'E002' }]);

    expect(modelPushes(hr.t.simulator)).toEqual([['E002', []]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E002', false]]);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: [], starCheck: false });
    expect(await outbox()).toEqual([]);
    const audits = await removalPushAudits('E002');
    expect(audits).toHaveLength(2);
    expect(audits.map((node) => node.details?.gatewayNotified)).toEqual([true, true]);
  });

  it('a failed removal push stays in the outbox and is sent after the next sync (triggerScan), audit updated', async () => {
    await giveE002ModelsAndStarCheck();
    failPermissionPushes();
    await syncWith(WITHOUT_E002);

    // The gateway was down: it still holds what E002 had, and the database remembers what is owed.
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: ['own-a', 'own-b'], starCheck: true });
    // Stored in the kinds' own form (KindSpec.write), as in every permission table.
    expect(await outbox()).toEqual([
      { kind: 'MODEL', employee_key: 'E002', push_value: '', last_notified: 'own-a,own-b' },
      { kind: 'STAR_CHECK', employee_key: 'E002', push_value: false, last_notified: true },
    ]);
    const failed = await removalPushAudits('E002');
    expect(failed.map((node) => node.details?.gatewayNotified)).toEqual([false, false]);
    expect(failed.every((node) => typeof node.details?.gatewayError === 'string')).toBe(true);

    // Still down at the next sync (which changes nothing in the mirror): still owed.
    await syncWith(WITHOUT_E002);
    expect(await outbox()).toHaveLength(2);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: ['own-a', 'own-b'], starCheck: true });

    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();
    expect(await triggerSync()).toEqual({ status: 'SUCCEEDED', error: null });

    expect(modelPushes(hr.t.simulator)).toEqual([['E002', []]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E002', false]]);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: [], starCheck: false });
    expect(await outbox()).toEqual([]);
    const retried = await removalPushAudits('E002');
    expect(retried.map((node) => node.details?.gatewayNotified)).toEqual([true, true]);
    expect(retried.map((node) => node.details?.pushedValue).sort()).toEqual([[], false].sort());

    // Sent once: a further sync has nothing left to send.
    hr.t.simulator.clearCalls();
    await syncWith(WITHOUT_E002);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });

  it('an employee HR brings back before the retry gets no [] push; their recompute applies', async () => {
    await api.whitelist({ departmentName: 'Sales', models: ['sales'] });
    await giveE002ModelsAndStarCheck();
    hr.t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    await syncWith(WITHOUT_E002);
    expect(await outbox()).toHaveLength(1); // star check went out; models did not
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    const result = await syncWith(WITH_E002);
    expect(result.changes.added).toEqual(['E002']);

    // Their personal whitelist went with the removal: Sales' list applies, and nothing else is sent.
    expect(modelPushes(hr.t.simulator)).toEqual([['E002', ['sales']]]);
    expect(hr.t.simulator.getEmployee('E002').models).toEqual(['sales']);
    expect(await outbox()).toEqual([]);
    const [dropped] = await removalPushAudits('E002').then((audits) =>
      audits.filter((node) => node.details?.kind === 'MODEL'),
    );
    expect(dropped?.details).toMatchObject({
      gatewayNotified: false,
      skipped: expect.stringMatching(/back in the HR/),
    });

    // And no late retry clears it.
    hr.t.simulator.clearCalls();
    await syncWith(WITH_E002);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
    expect(hr.t.simulator.getEmployee('E002').models).toEqual(['sales']);
  });

  it('an employee brought back with nothing applicable is told what differs from what the gateway still holds', async () => {
    await giveE002ModelsAndStarCheck();
    failPermissionPushes();
    await syncWith(WITHOUT_E002);
    expect(await outbox()).toHaveLength(2);
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    await syncWith(WITH_E002);

    // A new employee with nothing applicable is normally not pushed (SPEC §6); but the gateway was
    // last told ['own-a', 'own-b'] and star check on, so the recompute tells it the new values.
    expect(modelPushes(hr.t.simulator)).toEqual([['E002', []]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E002', false]]);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: [], starCheck: false });
    expect(await outbox()).toEqual([]);
    const told = await hr
      .em()
      .execute<{ notified_models: string }[]>(
        `select notified_models from effective_permissions where employee_number = 'E002'`,
      );
    expect(told).toEqual([{ notified_models: '' }]);
  });

  it('a removal that owes no push (the gateway was never told anything) writes no outbox row', async () => {
    // E003 never had anything applicable, so the gateway was never told about them.
    const result = await syncWith(SMALL_EMPLOYEES.filter((employee) => employee.badge !== 'E003'));
    expect(result.changes.removed).toEqual([{ employeeNumber: 'E003' }]);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
    expect(await outbox()).toEqual([]);
    expect((await api.audits({ operation: 'employee_removed' })).nodes).toHaveLength(1);
  });

  it('what a sync owes survives a crash between its commit and the push: the next sync sends it', async () => {
    await giveE002ModelsAndStarCheck();
    // The sync's transaction as the service runs it, but the process "dies" before afterCommit.
    const listener = new PermissionSyncListener(hr.t.app.services.permissions);
    await hr.t.app.services.orm.em.fork().transactional(async (em) => {
      await em.execute(`delete from employee_department where employee_number = 'E002'`);
      await listener.beforeCommit(em, { added: [], moved: [], renamed: [], removed: [{ employeeNumber: 'E002' }] });
    });
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
    expect(await outbox()).toHaveLength(2);

    // The next sync finds the mirror already without E002 (no changes) and still sends what is owed.
    const result = await syncWith(WITHOUT_E002);
    expect(result.changes).toEqual({ added: [], moved: [], renamed: [], removed: [] });
    expect(modelPushes(hr.t.simulator)).toEqual([['E002', []]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E002', false]]);
    expect(await outbox()).toEqual([]);
  });

  it('a rolled-back sync leaves no outbox row', async () => {
    await giveE002ModelsAndStarCheck();
    const listener = new PermissionSyncListener(hr.t.app.services.permissions);
    await expect(
      hr.t.app.services.orm.em.fork().transactional(async (em) => {
        await listener.beforeCommit(em, { added: [], moved: [], renamed: [], removed: [{ employeeNumber: 'E002' }] });
        throw new Error('HR_SYNC_FAILED: refused');
      }),
    ).rejects.toThrow('refused');
    expect(await outbox()).toEqual([]);
    await syncWith(WITH_E002);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });

  it('a push that failed ambiguously (it may have landed) is cleared at removal: the sync owes [] for the value', async () => {
    // Every attempt of E002's push is applied and then answered 503: the admin change reports the
    // failure, "last told" stays null, yet the gateway holds ['x'].
    const attempts = hr.t.app.services.config.gateway.retries + 1;
    hr.t.simulator.setFault('setModels', { kind: 'applied-then-status', status: 503, times: attempts });
    await api.whitelist({ user: { employeeNumber: 'E002' }, models: ['x'] });
    expect(hr.t.simulator.getEmployee('E002').models).toEqual(['x']);
    const [told] = await hr
      .em()
      .execute<{ notified_models: string | null }[]>(
        `select notified_models from effective_permissions where employee_number = 'E002'`,
      );
    expect(told?.notified_models).toBeNull();

    await syncWith(WITHOUT_E002);
    expect(hr.t.simulator.getEmployee('E002').models).toEqual([]);
    expect(modelPushes(hr.t.simulator).at(-1)).toEqual(['E002', []]);
    expect(await outbox()).toEqual([]);
    const owed = await removalPushAudits('E002');
    expect(owed.map((node) => node.details)).toEqual([
      expect.objectContaining({ kind: 'MODEL', lastNotified: ['x'], gatewayNotified: true, pushedValue: [] }),
    ]);
  });

  it('a push in flight while a sync removes its employee is followed by the removal push it now owes', async () => {
    // E002 has never been told anything. The simulator holds the push of ['x'] until the test releases
    // it; meanwhile the whitelist is cleared (nothing to push: never told, empty) and the sync removes
    // E002: its delete finds [] and "last told" null, so it owes nothing — and the held push then lands
    // ['x'] for an employee who no longer exists.
    hr.t.simulator.setFault('setModels', { kind: 'hold', times: 1 });
    const change = api.whitelist({ user: { employeeNumber: 'E002' }, models: ['x'] });
    await until('the push of [x] to reach the gateway', () =>
      hr.t.simulator.calls({ route: 'setModels', outcome: 'pending' }).some((c) => c.params.employee_number === 'E002'),
    );
    // The clear commits at once; its push (re-checked under the push lock: nothing to tell) waits for
    // the held one, so it is not awaited here.
    const clearing = api.whitelist({ user: { employeeNumber: 'E002' }, models: [] });
    await until('the cleared whitelist to be committed', async () => {
      const [row] = await hr
        .em()
        .execute<{ effective_models: string }[]>(
          `select effective_models from effective_permissions where employee_number = 'E002'`,
        );
      return row?.effective_models === '';
    });
    const result = await syncWith(WITHOUT_E002);
    expect(result.changes.removed).toEqual([{ employeeNumber: 'E002' }]);
    // The race did happen (otherwise the test proves nothing): the sync committed while the push was
    // held, and it owed no removal push.
    expect(hr.t.simulator.calls({ route: 'setModels' }).map((call) => call.outcome)).toEqual(['pending']);
    const [removed] = (await api.audits({ operation: 'employee_removed', targetIdentifier: 'E002' })).nodes;
    expect(removed?.details?.lastNotified).toEqual({ MODEL: null, STAR_CHECK: null });
    expect(await removalPushAudits('E002')).toEqual([]);
    expect(hr.t.simulator.release()).toBe(1);
    await Promise.all([change, clearing]);

    // The push found E002's record gone and E002 out of the mirror: it recorded the removal push
    // the non-empty list it had just told now owes, and sent it.
    await until('the gateway to hold [] for E002', () => hr.t.simulator.getEmployee('E002').models.length === 0);
    expect(modelPushes(hr.t.simulator)).toEqual([
      ['E002', ['x']],
      ['E002', []],
    ]);
    expect(await outbox()).toEqual([]);
    const owed = await removalPushAudits('E002');
    expect(owed).toHaveLength(1);
    expect(owed[0]?.details).toMatchObject({
      kind: 'MODEL',
      lastNotified: ['x'],
      gatewayNotified: true,
      pushedValue: [],
    });

    // Nothing left for a later sync to send.
    hr.t.simulator.clearCalls();
    await syncWith(WITHOUT_E002);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });

  it('a push in flight while a sync that already owes a removal push removes its employee: one push, one audit each', async () => {
    await giveE002ModelsAndStarCheck();
    // The held push of ['x'] keeps the push lock of (MODEL, E002), so the sync's own removal push
    // ([] models, owed for ['own-a', 'own-b']) waits for it: the sync is not awaited here.
    hr.t.simulator.setFault('setModels', { kind: 'hold', times: 1 });
    const change = api.whitelist({ user: { employeeNumber: 'E002' }, models: ['x'] });
    await until('the push of [x] to reach the gateway', () =>
      hr.t.simulator.calls({ route: 'setModels', outcome: 'pending' }).some((c) => c.params.employee_number === 'E002'),
    );
    const sync = syncWith(WITHOUT_E002);
    await until('the sync to commit the removal', async () => {
      const audits = await api.audits({ operation: 'employee_removed', targetIdentifier: 'E002' });
      return audits.nodes.length === 1;
    });
    expect(hr.t.simulator.calls({ route: 'setModels' }).map((call) => call.outcome)).toEqual(['pending']);
    expect(hr.t.simulator.release()).toBe(1);
    await Promise.all([change, sync]);

    expect(modelPushes(hr.t.simulator)).toEqual([
      ['E002', ['x']],
      ['E002', []],
    ]);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: [], starCheck: false });
    expect(await outbox()).toEqual([]);
    // The sync's row was kept (only its "last told" updated), so its audit got the outcome and no
    // second row was written for the same push.
    const owed = await removalPushAudits('E002');
    expect(owed.map((node) => [node.details?.kind, node.details?.gatewayNotified]).sort()).toEqual([
      ['MODEL', true],
      ['STAR_CHECK', true],
    ]);
  });
  it('a removed employee whose last push may have landed unseen is cleared, whatever "last told" says', async () => {
    // ['x'] lands while every answer is lost ("last told" stays null); clearing it then gets no answer
    // and lands nothing. The gateway holds ['x'] for an employee whose record says never told, [].
    hr.t.simulator.setFault('setModels', { kind: 'applied-then-drop' });
    await api.whitelist({ user: { employeeNumber: 'E002' }, models: ['x'] });
    hr.t.simulator.setFault('setModels', { kind: 'drop' });
    await api.whitelist({ user: { employeeNumber: 'E002' }, models: [] });
    expect(hr.t.simulator.getEmployee('E002').models).toEqual(['x']);
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    await syncWith(WITHOUT_E002);

    expect(modelPushes(hr.t.simulator)).toEqual([['E002', []]]);
    expect(hr.t.simulator.getEmployee('E002').models).toEqual([]);
    expect(await outbox()).toEqual([]);
    const [owed] = await removalPushAudits('E002');
    expect(owed?.details).toMatchObject({ kind: 'MODEL', lastNotifiedUncertain: true, gatewayNotified: true });
  });

  it('an employee brought back after a removal push that may have landed is told their values again', async () => {
    // Sales' settings apply to E002 and the gateway was told them; nothing personal.
    await api.whitelist({ departmentName: 'Sales', models: ['sales'] });
    await api.switchOn({ kind: 'STAR_CHECK', departmentName: 'Sales', enabled: true });
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: ['sales'], starCheck: true });
    // The removal pushes land, but their answers are lost: they stay owed, and the gateway holds [] / false.
    hr.t.simulator.setFault('setModels', { kind: 'applied-then-drop' });
    hr.t.simulator.setFault('setStarCheck', { kind: 'applied-then-drop' });
    await syncWith(WITHOUT_E002);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: [], starCheck: false });
    expect(await outbox()).toHaveLength(2);
    hr.t.simulator.clearFaults();
    hr.t.simulator.clearCalls();

    // Back before the retry: their recompute gives what they were last told, which the gateway may
    // no longer hold — so it is told again.
    await syncWith(WITH_E002);

    expect(modelPushes(hr.t.simulator)).toEqual([['E002', ['sales']]]);
    expect(starCheckPushes(hr.t.simulator)).toEqual([['E002', true]]);
    expect(hr.t.simulator.getEmployee('E002')).toMatchObject({ models: ['sales'], starCheck: true });
    expect(await outbox()).toEqual([]);
    hr.t.simulator.clearCalls();
    await syncWith(WITH_E002);
    expect(permissionCalls(hr.t.simulator)).toEqual([]);
  });
});

describe('a setting change racing the sync that removes its employee', () => {
  it('waits for the sync, then finds the employee gone: USER_NOT_FOUND, nothing stored or pushed', async () => {
    // Holds the sync's transaction open after the permissions listener took the lock (listeners run
    // in registration order), as a long recompute over many employees would.
    let reached = false;
    let open: () => void = () => undefined;
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gate = {
      async beforeCommit() {
        reached = true;
        await opened;
      },
      async afterCommit() {},
    };
    hr.sync.addChangeListener(gate);
    try {
      const sync = syncWith(WITHOUT_E002);
      await until('the sync holds the permissions lock', () => reached);
      const change = api.setSwitch({ kind: 'STAR_CHECK', user: { employeeNumber: 'E002' }, enabled: true });
      await advisoryLockWaiters(hr.em(), 1);
      open();
      await sync;
      const response = await change;
      expect(errorCode(response)).toBe('USER_NOT_FOUND');
    } finally {
      open();
      hr.sync.removeChangeListener(gate);
    }
    const stored = await hr.em().execute(`select 1 from star_check_settings where target_identifier = 'E002'
                union all select 1 from effective_star_check_settings where employee_number = 'E002'`);
    expect(stored).toEqual([]);
    expect(starCheckPushes(hr.t.simulator).filter(([employee, enabled]) => employee === 'E002' && enabled)).toEqual([]);
    // A later sync of the same feed finds nothing left to clean up.
    expect((await syncWith(WITHOUT_E002)).changes.removed).toEqual([]);
  });
});
