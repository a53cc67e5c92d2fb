import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { insertEmployees, insertUsers, modelPushes, permissionApi, starCheckPushes } from './permission-support.js';

/**
 * With employee sync disabled (the default) the employee key is the user id (SPEC §6): that is what
 * settings are stored under, what the API shows and what the gateway receives. A user whose
 * employee_number the mirror knows still gets that department's settings, under their user id.
 */

let t: TestApp;
let api: ReturnType<typeof permissionApi>;

beforeAll(async () => {
  t = await startTestApp({ label: 'permissions_sync_off' });
  api = permissionApi(t);
  await insertUsers(t, [
    { id: 'user-a', employeeNumber: 'E1' },
    { id: 'user-b', employeeNumber: 'E2' },
    { id: 'user-c' },
  ]);
  await insertEmployees(t, [
    { number: 'E1', path: ['Corp', 'R&D'] },
    { number: 'E2', path: ['Corp', 'R&D'] },
    { number: 'E3', path: ['Corp', 'R&D'] },
  ]);
});

afterAll(async () => {
  await t?.stop();
});

describe('employee sync off', () => {
  it('the user id is the key the gateway receives, whichever way the user is named', async () => {
    expect(t.config.hr.enabled).toBe(false);
    const byId = await api.whitelist({ user: { userId: 'user-c' }, models: ['m-c'] });
    expect(byId).toMatchObject({ targetType: 'USER', targetIdentifier: 'user-c' });
    const byNumber = await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E1' }, enabled: true });
    expect(byNumber).toMatchObject({ targetIdentifier: 'user-a' });
    expect(modelPushes(t.simulator)).toEqual([['user-c', ['m-c']]]);
    expect(starCheckPushes(t.simulator)).toEqual([['user-a', true]]);
    expect(await api.effective('MODEL', 'USER', 'user-c')).toMatchObject({
      targetIdentifier: 'user-c',
      models: ['m-c'],
      source: 'USER',
      sourceIdentifier: 'user-c',
    });
  });

  it("a department's setting reaches its members under their user ids; HR-only employees have no key", async () => {
    t.simulator.clearCalls();
    await api.whitelist({ departmentName: 'R&D', models: ['rd'] });
    expect(modelPushes(t.simulator).sort()).toEqual([
      ['user-a', ['rd']],
      ['user-b', ['rd']],
    ]);
    expect(await api.effective('MODEL', 'USER', 'user-b')).toMatchObject({
      models: ['rd'],
      source: 'DEPARTMENT',
      sourceIdentifier: 'R&D',
    });
  });

  it('unknown users are USER_NOT_FOUND', async () => {
    expect(errorCode(await api.setWhitelist({ user: { userId: 'nobody' }, models: ['a'] }))).toBe('USER_NOT_FOUND');
    expect(errorCode(await api.setWhitelist({ user: { employeeNumber: 'E3' }, models: ['a'] }))).toBe('USER_NOT_FOUND');
    expect(errorCode(await api.effectiveRaw('MODEL', 'USER', 'E1'))).toBe('USER_NOT_FOUND');
  });
});
