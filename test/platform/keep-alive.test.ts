import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * Idle keep-alive connections outlive a load balancer's usual 60 s idle timeout (src/server.ts), so
 * the proxy, not the server, closes them first and never sends a request on a connection the server
 * is closing. Node announces the timeout in the Keep-Alive header.
 */

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'keep-alive' });
});
afterAll(async () => app?.stop());

function keepAliveHeader(path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const call = request(`${app.baseUrl}${path}`, { headers: { connection: 'keep-alive' } }, (response) => {
      response.resume();
      response.on('end', () => {
        const header = response.headers['keep-alive'];
        resolve(Array.isArray(header) ? header.join(', ') : header);
      });
    });
    call.on('error', reject);
    call.end();
  });
}

describe('HTTP keep-alive', () => {
  test('idle connections are kept 65 s, longer than a load balancer keeps them', async () => {
    expect(await keepAliveHeader('/health')).toBe('timeout=65');
  });
});
