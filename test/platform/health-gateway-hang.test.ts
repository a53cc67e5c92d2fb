import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/until.js';

/**
 * /health when the gateway hangs: ledger transactions wait on it while holding pooled connections,
 * and enough of them fill the pool (20). The database still answers, and health must say so — a check
 * queued behind them answered "database: false" (503), and a load balancer would then take every
 * instance out because of the gateway.
 */

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'health-gateway-hang', env: { AIGATEWAY_TIMEOUT_MS: '60000' } });
  // The first /ready reads the migrations (through the pool) and remembers that they are applied.
  expect((await fetch(`${app.baseUrl}/ready`)).status).toBe(200);
});

afterAll(async () => {
  app?.simulator.clearFaults();
  app?.simulator.release();
  await app?.stop();
});

describe('health while every pooled connection waits on a hanging gateway', () => {
  it('still reports the database up', async () => {
    const quota = app.app.services.quota;
    const em = () => app.app.services.orm.em.fork();
    app.simulator.setFault('setTotal', { kind: 'hold' });
    const grants = Array.from({ length: 24 }, (_, index) =>
      quota
        .grantQuota(em(), { userId: `hang-${index}`, amount: 100, expiryDate: new Date('2099-01-01T00:00:00Z') })
        .catch((error: unknown) => error),
    );
    // Each grant holds its connection while the gateway holds its setTotal: 20 is the pool's size.
    await until(
      'the pool to be full',
      () => app.simulator.calls({ route: 'setTotal', outcome: 'pending' }).length >= 20,
    );

    const response = await fetch(`${app.baseUrl}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'ok', database: true });
    // /ready, which load balancers poll, neither: it needs no pooled connection once migrations are in.
    const ready = await fetch(`${app.baseUrl}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, database: true });

    app.simulator.clearFaults();
    app.simulator.release();
    const outcomes = await Promise.all(grants);
    expect(outcomes.filter((outcome) => outcome instanceof Error)).toEqual([]);
  });
});
