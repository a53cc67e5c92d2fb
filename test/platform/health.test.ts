import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { silentLogger } from '../../src/logger.js';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { until } from '../support/until.js';

/**
 * Health (SPEC §10, contract `health`): GET /health and the public query report the database, the
 * last gateway probe and the version; /ready adds pending migrations. The app runs on its own
 * embedded PostgreSQL so the test can stop that database under it.
 */

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const HEALTH_QUERY = '{ health { status database gateway version } }';

let folder: string;
let database: EmbeddedDatabase;
let app: TestApp;

async function getJson(pathName: string, method = 'GET') {
  const response = await fetch(`${app.baseUrl}${pathName}`, { method });
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get('content-type'),
    text,
    body: text ? JSON.parse(text) : null,
  };
}

async function healthQuery() {
  const response = await app.gql<{ health: Record<string, unknown> }>(HEALTH_QUERY);
  expect(response.errors).toBeUndefined();
  expect(response.status).toBe(200);
  return response.data!.health;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

beforeAll(async () => {
  folder = await mkdtemp(path.join(tmpdir(), 'qm-health-'));
  // As root the cluster runs as user postgres, who must be able to enter mkdtemp's 0700 folder.
  await chmod(folder, 0o755);
  database = await startEmbeddedPostgres({
    root: path.join(folder, 'data'),
    persistent: false,
    logger: silentLogger(),
  });
  app = await startTestApp({
    label: 'platform-health',
    databaseUrl: database.url.replace(/\/postgres$/, '/qm_health'),
  });
});

afterAll(async () => {
  await app?.stop();
  await database?.stop();
  await rm(folder, { recursive: true, force: true });
});

describe('when everything is up', () => {
  it('GET /health answers 200 with exactly {status, database, gateway, version}', async () => {
    // The first gateway probe runs at start, in the background.
    await eventually(async () => (await getJson('/health')).body.gateway === true);
    const health = await getJson('/health');
    expect(health.status).toBe(200);
    expect(health.type).toMatch(/^application\/json/);
    expect(health.body).toEqual({ status: 'ok', database: true, gateway: true, version: VERSION });
    expect(Object.keys(health.body)).toEqual(['status', 'database', 'gateway', 'version']);
  });

  it('the health query answers the same without a token', async () => {
    expect(await healthQuery()).toEqual({ status: 'ok', database: true, gateway: true, version: VERSION });
  });

  it('HEAD /health and a trailing slash work too', async () => {
    const head = await fetch(`${app.baseUrl}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await getJson('/health/')).status).toBe(200);
  });

  it('GET /ready answers 200 when the database answers and no migration is pending', async () => {
    const ready = await getJson('/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ ready: true, database: true, pendingMigrations: [], shuttingDown: false });
  });

  it('the check replaces its own connection when the server ended it: the next /health still says ok', async () => {
    expect((await getJson('/health')).status).toBe(200); // the check's connection is open now
    // What a database restart or an idle-session timeout does to every connection but this one.
    const ended = await app.app.services.orm.em.fork().execute<{ pid: number }[]>(
      `select pid, pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
    );
    expect(ended.length).toBeGreaterThan(0);
    // pg_terminate_backend only signals them. A session sends its client the termination notice before
    // it leaves pg_stat_activity, so once they are all gone the check's connection has heard of it.
    await until('the ended sessions to exit', async () => {
      const left = await app.app.services.orm.em
        .fork()
        .execute(`select 1 from pg_stat_activity where pid in (${ended.map((row) => Number(row.pid)).join(', ')})`)
        // A pooled connection that was just ended may be handed out before its end was noticed: ask again.
        .catch(() => null);
      return left !== null && left.length === 0;
    });
    const health = await getJson('/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ database: true });
  });

  it('only GET and HEAD reach /health', async () => {
    expect((await fetch(`${app.baseUrl}/health`, { method: 'POST' })).status).toBe(404);
  });
});

describe('when the gateway goes away', () => {
  it('reports gateway false after the next probe, and true again once it is back', async () => {
    const port = Number(new URL(app.simulator.url).port);
    await app.simulator.stop();
    expect(await app.app.services.gateway.probe()).toBe(false);
    const down = await getJson('/health');
    // The gateway does not make the server unhealthy: the database is what /health is about.
    expect(down.status).toBe(200);
    expect(down.body).toMatchObject({ status: 'ok', database: true, gateway: false });
    expect(await healthQuery()).toMatchObject({ status: 'ok', gateway: false });

    await app.simulator.start(port);
    expect(await app.app.services.gateway.probe()).toBe(true);
    expect((await getJson('/health')).body.gateway).toBe(true);
  });

  it('a failed gateway call also shows: the flag is the outcome of the last call', async () => {
    app.simulator.setFault('getTotal', { kind: 'status', status: 503 });
    const failed = await app.gql('{ gatewayQuota(userId: "someone") { totalQuota } }', {}, { token: app.adminToken });
    expect(errorCode(failed)).toBe('GATEWAY_UNAVAILABLE');
    expect((await getJson('/health')).body.gateway).toBe(false);
    app.simulator.clearFaults();
    expect(await app.app.services.gateway.probe()).toBe(true);
  });
});

describe('when the database goes away', () => {
  beforeAll(async () => {
    await database.stop();
  });

  it('GET /health answers 503 with database false and status degraded', async () => {
    const health = await getJson('/health');
    expect(health.status).toBe(503);
    expect(health.body).toEqual({ status: 'degraded', database: false, gateway: true, version: VERSION });
  });

  it('the health query still answers (200), with status "degraded"', async () => {
    expect(await healthQuery()).toEqual({ status: 'degraded', database: false, gateway: true, version: VERSION });
  });

  it('GET /ready answers 503', async () => {
    const ready = await getJson('/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ready: false, database: false });
  });

  it('an operation that needs the database answers a masked INTERNAL_SERVER_ERROR', async () => {
    const response = await app.gql('{ viewer { userId name } }', {}, { token: app.userToken });
    expect(errorCode(response)).toBe('INTERNAL_SERVER_ERROR');
    expect(JSON.stringify(response.errors)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres|select/i);
  });
});
