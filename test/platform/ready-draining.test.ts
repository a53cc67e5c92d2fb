import { afterAll, beforeAll, expect, it } from 'vitest';
import { addUsers, createStrategy, numberedUsers, runStrategy } from '../strategies/strategy-support.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/until.js';

/**
 * Graceful shutdown and the load balancer: from the moment stop begins (SIGTERM/SIGINT call it),
 * GET /ready answers 503 with shuttingDown, while HTTP still serves and running jobs reach a safe
 * point — so new traffic goes elsewhere during the drain.
 */

let app: TestApp;
let stopped = false;

beforeAll(async () => {
  app = await startTestApp({ label: 'ready-draining' });
});
afterAll(async () => {
  if (!stopped) await app?.stop();
});

async function ready(): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${app.baseUrl}/ready`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

it('answers 200 before, then 503 with shuttingDown while a running job drains', async () => {
  expect(await ready()).toEqual({
    status: 200,
    body: { ready: true, database: true, pendingMigrations: [], shuttingDown: false },
  });
  await addUsers(app, numberedUsers('drain', 3));
  const strategy = await createStrategy(app, { name: 'drain-slowly', condition: 'true()' });
  // The gateway holds the run's writes until the test lets them go: the run is mid-write when the stop
  // begins and cannot reach its safe point (nor HTTP close) before /ready has been asked.
  app.simulator.setFault('setTotal', { kind: 'hold' });
  let stopping: Promise<void> | undefined;
  try {
    await runStrategy(app, strategy.id);
    await until('a write of the run to be held by the gateway', () =>
      app.simulator
        .calls({ route: 'setTotal', outcome: 'pending' })
        .some((call) => call.params.user_id?.startsWith('drain')),
    );

    stopping = app.stop();
    stopped = true;
    let draining: { status: number; body: Record<string, unknown> } | null = null;
    const deadline = Date.now() + 5_000;
    while (draining === null && Date.now() < deadline) {
      const answer = await ready().catch(() => null);
      if (answer?.status === 503) draining = answer;
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(draining).toEqual({
      status: 503,
      body: { ready: false, database: true, pendingMigrations: [], shuttingDown: true },
    });
  } finally {
    // Whatever happened: the held writes go on, so the run reaches its safe point and the stop ends.
    app.simulator.clearFaults();
    app.simulator.release();
  }
  await stopping;
});
