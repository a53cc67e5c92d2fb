import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoOrganisation } from '../../src/modules/employees/demo-organisation.js';
import { seedDemoPermissions } from '../../src/modules/permissions/demo-permissions.js';
import { DEMO_USER_ID, seedDemoDirectory } from '../../src/modules/users/demo-directory.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { permissionApi, permissionCalls } from './permission-support.js';

/** `npm run seed`'s permission step, on the demo directory and organisation (employee sync off). */

let t: TestApp;
let api: ReturnType<typeof permissionApi>;

beforeAll(async () => {
  t = await startTestApp({ label: 'demo_permissions' });
  api = permissionApi(t);
  const em = t.app.services.orm.em.fork();
  await seedDemoDirectory(em);
  await seedDemoOrganisation(em);
});

afterAll(async () => {
  await t?.stop();
});

describe('demo permissions', () => {
  it('seeds settings at several levels once, without calling the gateway', async () => {
    expect(await seedDemoPermissions(t.app.services.orm, t.config)).toBe(8);
    const audits = (await api.audits()).totalCount;
    expect(await seedDemoPermissions(t.app.services.orm, t.config)).toBe(0);
    expect((await api.audits()).totalCount).toBe(audits);
    expect(permissionCalls(t.simulator)).toEqual([]);

    expect(await api.effective('MODEL', 'USER', DEMO_USER_ID)).toMatchObject({
      models: ['gpt-4o', 'claude-opus-4', 'qwen-max'],
      source: 'USER',
    });
    expect(await api.effective('MODEL', 'DEPARTMENT', 'AI Lab')).toMatchObject({
      models: ['gpt-4o', 'claude-opus-4', 'deepseek-r1'],
      source: 'DEPARTMENT',
      sourceIdentifier: 'AI Lab',
    });
    expect(await api.effective('QUOTA_CHECK', 'DEPARTMENT', 'Sales')).toMatchObject({
      enabled: false,
      source: 'DEPARTMENT',
    });
    expect(await api.effective('QUOTA_CHECK', 'DEPARTMENT', 'Engineering')).toMatchObject({
      enabled: true,
      sourceIdentifier: 'Acme Group',
    });
  });

  it('leaves the seeded values owed to the gateway, so the next recompute pushes them', async () => {
    // A change above the demo user that leaves their own value as it was.
    await api.whitelist({ departmentName: 'Acme Group', models: ['gpt-4.1'], action: 'ADD' });
    expect(t.simulator.getEmployee(DEMO_USER_ID).models).toEqual(['gpt-4o', 'claude-opus-4', 'qwen-max']);
  });
});
