import { afterAll, beforeAll, expect, test } from 'vitest';
import { seedDemoOrganisation } from '../../src/modules/employees/demo-organisation.js';
import { CONDITION_FUNCTIONS, parseCondition, walkCondition } from '../../src/modules/strategies/condition/index.js';
import { DEMO_STRATEGY_CONDITIONS, seedDemoStrategies } from '../../src/modules/strategies/demo-strategies.js';
import { seedDemoDirectory } from '../../src/modules/users/demo-directory.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { checkInvariants, em, strategyCount, triggerScan, waitForRun } from './strategy-support.js';

/** SPEC §2 seed: demo strategies covering every condition function, safe to load twice, and runnable. */

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ label: 'demo strategies', env: { HR_SYNC_ENABLED: 'true' } });
});
afterAll(async () => app?.stop());

test('the demo conditions use every function of the language', () => {
  const used = new Set<string>();
  for (const condition of DEMO_STRATEGY_CONDITIONS) {
    const parsed = parseCondition(condition, 'Asia/Shanghai');
    if (!parsed.ok) throw new Error(`${condition}: ${parsed.error.message}`);
    walkCondition(parsed.ast, (node) => {
      used.add(node.kind === 'constant' ? String(node.value) : node.kind);
    });
  }
  expect([...used].sort()).toEqual([...CONDITION_FUNCTIONS].sort());
});

test('seeding twice leaves one copy of each; the scan grants with them', async () => {
  await seedDemoDirectory(em(app));
  await seedDemoOrganisation(em(app));
  const seeded = await seedDemoStrategies(em(app), 'Asia/Shanghai');
  expect(await seedDemoStrategies(em(app), 'Asia/Shanghai')).toBe(seeded);
  expect(await strategyCount(app)).toBe(seeded);
  const run = await waitForRun(app, (await triggerScan(app)).id);
  expect(run).toMatchObject({ status: 'SUCCEEDED', failed: 0 });
  expect(run.succeeded).toBeGreaterThan(20);
  await checkInvariants(app);
});
