import { SettableClock } from '../../src/clock.js';
import type { EntityManager } from '../../src/db/orm.js';
import type { GrantResult } from '../../src/modules/quota/quota.service.js';
import { amountToCents } from '../../src/money.js';
import type { TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';

/** Helpers shared by the ledger tests: directory users, grants, the database and the invariants. */

export const ZONE = 'Asia/Shanghai';

/** A settable clock in the default zone, starting at a fixed instant. */
export function testClock(start = '2026-11-15T04:00:00Z'): SettableClock {
  return new SettableClock(ZONE, start);
}

export function em(app: TestApp): EntityManager {
  return app.app.services.orm.em.fork();
}

/** Adds users to the directory (auth_users belongs to the login system: plain SQL, as it would write). */
export async function addDirectoryUsers(
  app: TestApp,
  users: { id: string; githubStar?: string | null }[],
): Promise<void> {
  for (const user of users) {
    await em(app).execute(
      'insert into auth_users (id, name, github_star) values (?, ?, ?) on conflict (id) do nothing',
      [user.id, `User ${user.id}`, user.githubStar ?? null],
    );
  }
}

/** Grants through the real service (amount as a decimal, expiry as an ISO instant). */
export function grant(app: TestApp, userId: string, amount: number, expiry: string | Date): Promise<GrantResult> {
  return app.app.services.quota.grantQuota(em(app), {
    userId,
    amount: amountToCents(amount),
    expiryDate: new Date(expiry),
    actor: 'test',
  });
}

export function checkInvariants(app: TestApp): Promise<void> {
  return assertLedgerInvariants(em(app), app.simulator);
}

export interface BatchRowView {
  amount: number;
  expiry: string;
  status: string;
}

/** Every batch of a user as plain values, expiry ascending. */
export async function batchesOf(app: TestApp, userId: string): Promise<BatchRowView[]> {
  const rows = await em(app).execute<{ amount: string; expiry_date: Date; status: string }[]>(
    'select amount, expiry_date, status from quota where user_id = ? order by expiry_date, id',
    [userId],
  );
  return rows.map((row) => ({
    amount: Number(row.amount),
    expiry: new Date(row.expiry_date).toISOString(),
    status: row.status,
  }));
}

export async function auditsOf(
  app: TestApp,
  userId: string,
): Promise<{ operation: string; amount: number; details: unknown; reason: string | null; reference: string | null }[]> {
  const rows = await em(app).execute<
    { operation: string; amount: string; details: string; reason: string | null; reference: string | null }[]
  >('select operation, amount, details, reason, reference from quota_audit where user_id = ? order by id', [userId]);
  return rows.map((row) => ({ ...row, amount: Number(row.amount), details: JSON.parse(row.details) }));
}

/** The database state of one user, for "nothing changed" assertions. */
export async function ledgerSnapshot(app: TestApp, userId: string): Promise<unknown> {
  return {
    batches: await batchesOf(app, userId),
    audits: await auditsOf(app, userId),
    gateway: app.simulator.getUser(userId),
  };
}

/**
 * The monthly-expiry scene of the expiry tests (Asia/Shanghai): grants are made at GRANT_TIME, the
 * run happens at RUN_TIME (00:00:00 on 1 Dec 2026, the monthly fire); EXPIRED expiries have passed by
 * then (23:59:59 on 20/21/22 Nov), VALID ones have not (31 Dec, 31 Jan, 28 Feb).
 */
export const EXPIRY_SCENE = {
  GRANT_TIME: '2026-11-15T04:00:00Z',
  RUN_TIME: '2026-11-30T16:00:00Z',
  EXPIRED: ['2026-11-20T15:59:59.000Z', '2026-11-21T15:59:59.000Z', '2026-11-22T15:59:59.000Z'],
  VALID: ['2026-12-31T15:59:59.000Z', '2027-01-31T15:59:59.000Z', '2027-02-28T15:59:59.000Z'],
} as const;

/** A user with the given expired and still-valid batches (amounts, in scene order) and gateway used. */
export async function setUpExpiryUser(
  app: TestApp,
  clock: SettableClock,
  userId: string,
  expired: number[],
  valid: number[],
  used: number,
): Promise<void> {
  clock.set(EXPIRY_SCENE.GRANT_TIME);
  for (const [index, amount] of expired.entries()) await grant(app, userId, amount, EXPIRY_SCENE.EXPIRED[index]!);
  for (const [index, amount] of valid.entries()) await grant(app, userId, amount, EXPIRY_SCENE.VALID[index]!);
  app.simulator.setUser(userId, { used: Math.round(used * 100) });
}
