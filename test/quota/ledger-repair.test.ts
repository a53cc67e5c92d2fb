import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { em, grant, testClock } from './quota-support.js';

/**
 * When a ledger transaction rolls back after the gateway total was (maybe) written, the ledger
 * restores the committed total once. It must not keep repairing its own repair while the gateway
 * keeps failing: that is quota sync's job.
 */
describe('ledger repair after a rollback', () => {
  let app: TestApp;
  const clock = testClock();

  beforeAll(async () => {
    app = await startTestApp({ label: 'ledger-repair', clock });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('makes one repair attempt when the gateway keeps failing ambiguously, then gives up', async () => {
    await grant(app, 'repair-user', 100, '2026-12-31T15:59:59Z');
    app.simulator.clearCalls();
    // Every setTotal is applied but answered 502: ambiguous, so the ledger thinks the gateway may be ahead.
    app.simulator.setFault('setTotal', { kind: 'applied-then-status', status: 502 });
    const attempts = app.config.gateway.retries + 1;

    await expect(
      app.app.services.ledger.withUserLedger(em(app), 'repair-user', async (ledger) => {
        const [batch] = await ledger.validBatches();
        await ledger.credit(batch!.expiryDate, 5000);
        await ledger.pushTotal();
      }),
    ).rejects.toMatchObject({ code: 'GATEWAY_UNAVAILABLE' });

    // The change's own push, then exactly one repair push (each with its retries), no more.
    expect(app.simulator.calls({ route: 'setTotal' }).length).toBeLessThanOrEqual(2 * attempts);
    app.simulator.clearFaults();
  });
});
