import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';

/**
 * SPEC §2: `auth_users.id` may be text or uuid (a directory adopted from the login system is never
 * migrated by us). With a uuid column, an id that is not a uuid is simply not in the directory —
 * USER_NOT_FOUND, never a database error — and strategy scans page and join over it.
 */

const GIVER = '0b7f3c52-3f6e-4d0e-9a57-6d1f1f1c0a01';
const RECEIVER = '0b7f3c52-3f6e-4d0e-9a57-6d1f1f1c0a02';
const ABSENT = '0b7f3c52-3f6e-4d0e-9a57-6d1f1f1c0aff';

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'uuid-directory' });
  const em = app.app.services.orm.em.fork();
  await em.execute('delete from auth_users');
  await em.execute('alter table auth_users alter column id type uuid using id::uuid');
  await em.execute(
    `insert into auth_users (id, name, created_at) values (?, 'Giver', '2024-01-01Z'), (?, 'Receiver', '2026-06-01Z')`,
    [GIVER, RECEIVER],
  );
});

afterAll(async () => app?.stop());

function admin<T>(query: string, variables: Record<string, unknown> = {}) {
  return app.gql<T>(query, variables, { token: app.adminToken });
}

describe('a directory whose id column is uuid', () => {
  it('answers USER_NOT_FOUND for ids that are not uuids, and for uuids it does not have', async () => {
    for (const userId of ['bob', '', 'x'.repeat(36), ABSENT]) {
      const response = await admin('query($u: String!) { userQuota(userId: $u) { totalQuota } }', { u: userId });
      expect([userId, errorCode(response)]).toEqual([userId, userId === '' ? 'BAD_USER_INPUT' : 'USER_NOT_FOUND']);
    }
    const found = await admin<{ userQuota: { totalQuota: number } }>(
      'query($u: String!) { userQuota(userId: $u) { totalQuota } }',
      { u: GIVER },
    );
    expect(found.data?.userQuota.totalQuota).toBe(0);
  });

  it('runs strategies over it (keyset paging, exclusions, match-user, times), then transfers and deducts', async () => {
    const created = await admin<{ createStrategy: { id: string } }>(
      'mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }',
      {
        input: {
          name: 'uuid-users',
          title: 'uuid users',
          type: 'SINGLE',
          amount: 50,
          // quota-le leaves both users to the evaluator, which pages the directory by id.
          condition: `or(match-user("${GIVER}"), and(quota-le("m", 10), register-before("2025-01-01")))`,
        },
      },
    );
    const strategyId = created.data!.createStrategy.id;
    const preview = await admin<{ previewCondition: { matchedUsers: number; sampleUserIds: string[] } }>(
      'query($e: String!) { previewCondition(expression: $e) { matchedUsers sampleUserIds } }',
      { e: `or(match-user("${GIVER}"), and(quota-le("m", 10), register-before("2025-01-01")))` },
    );
    expect(preview.data?.previewCondition).toEqual({ matchedUsers: 1, sampleUserIds: [GIVER] });

    const run = await admin<{ runStrategy: { id: string } }>('mutation($id: ID!) { runStrategy(id: $id) { id } }', {
      id: strategyId,
    });
    await app.app.services.jobs.runner.waitFor(run.data!.runStrategy.id);
    const finished = await admin<{ jobRun: { status: string; succeeded: number; failed: number } }>(
      'query($id: ID!) { jobRun(id: $id) { status succeeded failed } }',
      { id: run.data!.runStrategy.id },
    );
    expect(finished.data?.jobRun).toEqual({ status: 'SUCCEEDED', succeeded: 1, failed: 0 });
    // A second run finds the giver already granted (the exclusion joins quota_execute with the uuid id).
    const again = await admin<{ runStrategy: { id: string } }>('mutation($id: ID!) { runStrategy(id: $id) { id } }', {
      id: strategyId,
    });
    await app.app.services.jobs.runner.waitFor(again.data!.runStrategy.id);
    const second = await admin<{ jobRun: { succeeded: number; failed: number } }>(
      'query($id: ID!) { jobRun(id: $id) { succeeded failed } }',
      { id: again.data!.runStrategy.id },
    );
    expect(second.data?.jobRun).toEqual({ succeeded: 0, failed: 0 });

    const giverToken = await app.token({ userId: GIVER });
    const expiry = (
      await app.app.services.orm.em
        .fork()
        .execute<{ expiry_date: Date }[]>('select expiry_date from quota where user_id = ?', [GIVER])
    )[0]!.expiry_date;
    const transfer = (receiverId: string) =>
      app.gql(
        'mutation($input: TransferOutInput!) { transferOut(input: $input) { totalAmount } }',
        { input: { receiverId, items: [{ amount: 5, expiryDate: new Date(expiry).toISOString() }] } },
        { token: giverToken },
      );
    expect(errorCode(await transfer('bob'))).toBe('USER_NOT_FOUND');
    expect(errorCode(await transfer(ABSENT))).toBe('USER_NOT_FOUND');
    expect((await transfer(RECEIVER)).data).toEqual({ transferOut: { totalAmount: 5 } });

    const deduct = (userId: string) =>
      admin('mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { amount } }', {
        input: { userId, amount: 1, reason: 'uuid test' },
      });
    expect(errorCode(await deduct('bob'))).toBe('USER_NOT_FOUND');
    expect((await deduct(GIVER)).data).toEqual({ deductQuota: { amount: -1 } });
    await assertLedgerInvariants(app.app.services.orm.em.fork(), app.simulator);
  });

  it('knows a token user who is not a uuid as a viewer without a directory record', async () => {
    const response = await app.gql<{ viewer: { userId: string; name: string | null } }>(
      '{ viewer { userId name } }',
      undefined,
      { token: await app.token({ userId: 'legacy-user' }) },
    );
    expect(response.data?.viewer).toEqual({ userId: 'legacy-user', name: null });
  });
});
