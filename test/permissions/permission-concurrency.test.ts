import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { insertEmployees, modelPushes, PERMISSION_TABLES, permissionApi } from './permission-support.js';

/** Concurrent changes keep every update, and department-wide pushes stay bounded. */

let t: TestApp;
let api: ReturnType<typeof permissionApi>;

beforeAll(async () => {
  t = await startTestApp({ label: 'permission_concurrency', env: { HR_SYNC_ENABLED: 'true' } });
  api = permissionApi(t);
});

afterAll(async () => {
  await t?.stop();
});

beforeEach(async () => {
  await t.app.services.orm.em
    .fork()
    .execute(`truncate ${[...PERMISSION_TABLES, 'employee_department'].join(', ')} restart identity`);
  t.simulator.reset();
});

describe('concurrency', () => {
  it('concurrent ADDs to one whitelist lose no name, and the gateway ends with the final list', async () => {
    await insertEmployees(t, [
      { number: 'C1', path: ['Corp', 'Ops'] },
      { number: 'C2', path: ['Corp', 'Ops'] },
    ]);
    const names = Array.from({ length: 12 }, (_, i) => `model-${i}`);
    const responses = await Promise.all(
      names.map((name) => api.setWhitelist({ departmentName: 'Ops', models: [name], action: 'ADD' })),
    );
    expect(responses.every((response) => response.errors === undefined)).toBe(true);

    const final = (await api.effective('MODEL', 'DEPARTMENT', 'Ops')).models ?? [];
    expect([...final].sort()).toEqual([...names].sort());
    expect((await api.audits({ operation: 'whitelist_set' })).totalCount).toBe(names.length);
    for (const employee of ['C1', 'C2']) {
      expect(t.simulator.getEmployee(employee).models).toEqual(final);
      const told = await t.app.services.orm.em
        .fork()
        .execute<{ told: string }[]>(
          'select notified_models as told from effective_permissions where employee_number = ?',
          [employee],
        );
      expect(told[0]?.told).toBe(final.join(','));
    }
  });

  it('a department-wide change has at most 8 gateway calls in flight', async () => {
    const employees = Array.from({ length: 30 }, (_, i) => ({
      number: `W${String(i).padStart(2, '0')}`,
      path: ['Corp', 'Wide'],
    }));
    await insertEmployees(t, employees);
    t.simulator.setFault('setModels', { kind: 'slow', delayMs: 40 });

    let maxInFlight = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        maxInFlight = Math.max(maxInFlight, t.simulator.calls({ route: 'setModels', outcome: 'pending' }).length);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await api.whitelist({ departmentName: 'Wide', models: ['wide'] });
    watching = false;
    await watcher;

    expect(modelPushes(t.simulator)).toHaveLength(30);
    expect(maxInFlight).toBeGreaterThan(1);
    expect(maxInFlight).toBeLessThanOrEqual(8);
  });

  it('a department-wide change while the gateway fails tries one round of pushes and defers the rest', async () => {
    const employees = Array.from({ length: 30 }, (_, i) => ({
      number: `D${String(i).padStart(2, '0')}`,
      path: ['Corp', 'Down'],
    }));
    await insertEmployees(t, employees);
    t.simulator.setFault('setModels', { kind: 'status', status: 503 });
    const response = await api.setWhitelist({ departmentName: 'Down', models: ['down'] });
    expect(response.errors).toBeUndefined(); // stored; the pushes stay owed
    const tried = new Set(t.simulator.calls({ route: 'setModels' }).map((call) => call.params.employee_number));
    expect(tried.size).toBe(8);
    const recomputes = (await api.audits({ operation: 'permission_updated', first: 40 })).nodes;
    expect(recomputes.filter((node) => node.details?.deferred !== undefined)).toHaveLength(22);
    expect(recomputes.filter((node) => node.details?.gatewayError !== undefined)).toHaveLength(8);
    const [setting] = (await api.audits({ operation: 'whitelist_set' })).nodes;
    expect(setting?.details).toMatchObject({ gateway: { pushed: 0, failed: 8, skipped: 0, deferred: 22 } });
  });
});
