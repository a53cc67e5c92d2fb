import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { addDirectoryUsers, checkInvariants, grant, testClock } from './quota-support.js';

/** myQuota, userQuota, Viewer.quota over HTTP (SPEC §5 first bullet, §1 access rules). */

const clock = testClock('2026-11-15T04:00:00Z');
const DAY = 86_400_000;
const now = new Date('2026-11-15T04:00:00Z').getTime();
const inDays = (days: number) => new Date(now + days * DAY).toISOString();

const QUOTA_FIELDS = `userId totalQuota usedQuota remainingQuota available { amount expiryDate } batches { id userId amount expiryDate status createdAt } isStar`;

let app: TestApp;
let starApp: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'quota-api', clock });
  starApp = await startTestApp({
    label: 'quota-api-star',
    clock,
    env: { GITHUB_STAR_REQUIRED_REPO: 'zgsm-ai.zgsm' },
  });
  await addDirectoryUsers(app, [{ id: 'user-1' }, { id: 'fifo-user' }, { id: 'other-user' }]);
});
afterAll(async () => {
  await app?.stop();
  await starApp?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  await checkInvariants(app);
  await checkInvariants(starApp);
});

describe('myQuota', () => {
  it('attributes used FIFO by earliest expiry: 100@+10d, 100@+30d, 100@+60d with used 150', async () => {
    await grant(app, 'user-1', 100, inDays(10));
    await grant(app, 'user-1', 100, inDays(30));
    await grant(app, 'user-1', 100, inDays(60));
    app.simulator.setUser('user-1', { used: 15_000 });

    const response = await app.gql<{ myQuota: Record<string, unknown> }>(
      `{ myQuota { ${QUOTA_FIELDS} } }`,
      {},
      {
        token: app.userToken,
      },
    );
    expect(response.errors).toBeUndefined();
    const quota = response.data!.myQuota;
    expect(quota).toMatchObject({
      userId: 'user-1',
      totalQuota: 300,
      usedQuota: 150,
      remainingQuota: 150,
      available: [
        { amount: 50, expiryDate: inDays(30) },
        { amount: 100, expiryDate: inDays(60) },
      ],
      isStar: null,
    });
    const batches = quota.batches as { amount: number; expiryDate: string; status: string; userId: string }[];
    expect(batches.map((batch) => [batch.amount, batch.expiryDate, batch.status, batch.userId])).toEqual([
      [100, inDays(10), 'VALID', 'user-1'],
      [100, inDays(30), 'VALID', 'user-1'],
      [100, inDays(60), 'VALID', 'user-1'],
    ]);
  });

  it('shows totals from the gateway even for a user without batches', async () => {
    const token = await app.token({ userId: 'nobody-yet' });
    const response = await app.gql<{ myQuota: Record<string, unknown> }>(
      `{ myQuota { ${QUOTA_FIELDS} } }`,
      {},
      {
        token,
      },
    );
    expect(response.data!.myQuota).toEqual({
      userId: 'nobody-yet',
      totalQuota: 0,
      usedQuota: 0,
      remainingQuota: 0,
      available: [],
      batches: [],
      isStar: null,
    });
  });

  it('lists nothing as available once used covers every batch', async () => {
    await grant(app, 'spent-user', 10, inDays(5));
    app.simulator.setUser('spent-user', { used: 1_200 });
    const token = await app.token({ userId: 'spent-user' });
    const response = await app.gql<{ myQuota: { available: unknown[]; remainingQuota: number } }>(
      '{ myQuota { available { amount } remainingQuota } }',
      {},
      { token },
    );
    expect(response.data!.myQuota).toEqual({ available: [], remainingQuota: -2 });
  });

  it('Viewer.quota is the same as myQuota', async () => {
    const [viewer, mine] = await Promise.all([
      app.gql<{ viewer: { quota: unknown } }>(
        `{ viewer { userId quota { ${QUOTA_FIELDS} } } }`,
        {},
        {
          token: app.userToken,
        },
      ),
      app.gql<{ myQuota: unknown }>(`{ myQuota { ${QUOTA_FIELDS} } }`, {}, { token: app.userToken }),
    ]);
    expect(viewer.errors).toBeUndefined();
    expect(viewer.data!.viewer.quota).toEqual(mine.data!.myQuota);
  });

  it('answers GATEWAY_UNAVAILABLE when the gateway cannot be read', async () => {
    app.simulator.setFault('getUsed', { kind: 'status', status: 503 });
    const response = await app.gql('{ myQuota { totalQuota } }', {}, { token: app.userToken });
    expect(errorCode(response)).toBe('GATEWAY_UNAVAILABLE');
    expect(response.errors![0]!.message).not.toMatch(/http:\/\//);
  });

  it('needs a token', async () => {
    expect(errorCode(await app.gql('{ myQuota { totalQuota } }'))).toBe('UNAUTHENTICATED');
    expect(errorCode(await app.gql('{ viewer { quota { totalQuota } } }'))).toBe('UNAUTHENTICATED');
  });
});

describe('userQuota [admin]', () => {
  it('shows any directory user to an admin, batches included', async () => {
    await grant(app, 'other-user', 12.34, inDays(20));
    const response = await app.gql<{ userQuota: Record<string, unknown> }>(
      `query($id: String!) { userQuota(userId: $id) { ${QUOTA_FIELDS} } }`,
      { id: 'other-user' },
      { token: app.adminToken },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.userQuota).toMatchObject({
      userId: 'other-user',
      totalQuota: 12.34,
      available: [{ amount: 12.34, expiryDate: inDays(20) }],
      batches: [{ amount: 12.34, expiryDate: inDays(20), status: 'VALID' }],
    });
  });

  it('answers USER_NOT_FOUND for a user not in the directory', async () => {
    const response = await app.gql(
      'query { userQuota(userId: "ghost") { totalQuota } }',
      {},
      { token: app.adminToken },
    );
    expect(errorCode(response)).toBe('USER_NOT_FOUND');
    expect(app.simulator.calls({ route: 'getTotal' }).some((call) => call.params.user_id === 'ghost')).toBe(false);
  });

  it('refuses bad user ids', async () => {
    for (const id of ['', '   ', 'x'.repeat(201)]) {
      const response = await app.gql(
        'query($id: String!) { userQuota(userId: $id) { totalQuota } }',
        { id },
        {
          token: app.adminToken,
        },
      );
      expect(errorCode(response)).toBe('BAD_USER_INPUT');
    }
  });

  it('is FORBIDDEN to a user, even for their own id', async () => {
    for (const id of ['other-user', 'user-1']) {
      const response = await app.gql(
        'query($id: String!) { userQuota(userId: $id) { totalQuota batches { id } } }',
        {
          id,
        },
        { token: app.userToken },
      );
      expect(errorCode(response)).toBe('FORBIDDEN');
      expect(response.data).toBeNull();
    }
  });
});

describe('isStar', () => {
  it('is true when one trimmed item of github_star equals GITHUB_STAR_REQUIRED_REPO (case-sensitive)', async () => {
    await addDirectoryUsers(starApp, [
      { id: 'star-yes', githubStar: 'openai.gpt-4,  zgsm-ai.zgsm ' },
      { id: 'star-case', githubStar: 'ZGSM-AI.zgsm' },
      { id: 'star-part', githubStar: 'zgsm-ai.zgsm-extra,xzgsm-ai.zgsm' },
      { id: 'star-none', githubStar: null },
      { id: 'star-tab', githubStar: 'x,\tzgsm-ai.zgsm\r\n' },
      // Only ASCII white space is trimmed, as the github-star condition trims (and its SQL translation).
      { id: 'star-nbsp', githubStar: 'zgsm-ai.zgsm\u00a0' },
      { id: 'star-ideographic', githubStar: 'other,\u3000zgsm-ai.zgsm' },
    ]);
    const expected: Record<string, boolean> = {
      'star-yes': true,
      'star-case': false,
      'star-part': false,
      'star-none': false,
      'star-tab': true,
      'star-nbsp': false,
      'star-ideographic': false,
      'not-in-directory': false,
    };
    for (const [userId, isStar] of Object.entries(expected)) {
      const token = await starApp.token({ userId });
      const response = await starApp.gql<{ myQuota: { isStar: boolean | null } }>(
        '{ myQuota { isStar } }',
        {},
        {
          token,
        },
      );
      expect(response.data!.myQuota.isStar, userId).toBe(isStar);
    }
  });

  it('is null when the star check is not configured', async () => {
    await addDirectoryUsers(app, [{ id: 'star-unconfigured', githubStar: 'zgsm-ai.zgsm' }]);
    const token = await app.token({ userId: 'star-unconfigured' });
    const response = await app.gql<{ myQuota: { isStar: boolean | null } }>('{ myQuota { isStar } }', {}, { token });
    expect(response.data!.myQuota.isStar).toBeNull();
  });
});
