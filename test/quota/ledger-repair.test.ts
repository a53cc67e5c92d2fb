import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { checkInvariants, em, grant, testClock } from './quota-support.js';

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

    // The change's own push of the new Σ (150), then exactly one repair push of the committed Σ (100),
    // each with its retries, no more. Every call was applied, so the gateway ends at the committed Σ.
    const pushed = app.simulator.calls({ route: 'setTotal' }).map((call) => [call.params.user_id, call.params.quota]);
    expect(pushed).toEqual([
      ...Array.from({ length: attempts }, () => ['repair-user', '150']),
      ...Array.from({ length: attempts }, () => ['repair-user', '100']),
    ]);
    app.simulator.clearFaults();
    expect(app.simulator.getUser('repair-user').total).toBe(10_000);
    await checkInvariants(app);
  });
});
