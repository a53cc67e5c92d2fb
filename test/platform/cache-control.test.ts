import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * Apollo's cache-control plugin is disabled (src/server.ts: no field sets a hint, and it cost every
 * resolver call); /graphql still tells every cache not to keep its per-viewer answers.
 */

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'cache control' });
});
afterAll(async () => app?.stop());

describe('GraphQL responses', () => {
  test('are no-store, by POST and by GET, answered or refused', async () => {
    const post = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${app.userToken}` },
      body: JSON.stringify({ query: '{ viewer { userId } }' }),
    });
    expect(await post.json()).toEqual({ data: { viewer: { userId: 'user-1' } } });
    expect(post.headers.get('cache-control')).toBe('no-store');

    const get = await fetch(`${app.baseUrl}/graphql?query=${encodeURIComponent('{ viewer { userId } }')}`, {
      headers: { authorization: `Bearer ${app.userToken}`, 'apollo-require-preflight': 'true' },
    });
    expect(await get.json()).toEqual({ data: { viewer: { userId: 'user-1' } } });
    expect(get.headers.get('cache-control')).toBe('no-store');

    const refused = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ nope }' }),
    });
    expect(refused.status).toBe(400);
    expect(refused.headers.get('cache-control')).toBe('no-store');
  });
});
