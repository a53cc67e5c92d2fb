import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, processAlive } from '../../src/db/embedded-postgres.js';
import { until } from '../support/until.js';

/**
 * The real entry point in embedded mode (SPEC §1, §9, §10): nothing configured, so it starts its own
 * PostgreSQL and gateway simulator, prints a banner with playground tokens that work, warns when
 * AUTH_VERIFY=false (set here through a .env file), keeps the gateway simulator's counters across a
 * restart, and exits 0 on SIGTERM and SIGINT. Run with tsx in an empty folder.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Server {
  child: ChildProcessWithoutNullStreams;
  output(): { stdout: string; stderr: string };
  exit: Promise<number | null>;
}

let cwd: string;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'qm-entry-'));
  // As root the embedded cluster runs as user postgres, who must be able to enter this folder.
  await chmod(cwd, 0o755);
});

afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

function startServer(env: Record<string, string>): Server {
  const child = spawn(
    path.join(PROJECT_ROOT, 'node_modules/.bin/tsx'),
    ['--tsconfig', path.join(PROJECT_ROOT, 'tsconfig.json'), path.join(PROJECT_ROOT, 'src/main.ts')],
    { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, DATA_DIR: '.data', ...env } },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, output: () => ({ stdout, stderr }), exit };
}

/** `npm run seed` in the test folder: resolves with its exit code and output. */
async function runSeed(env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    path.join(PROJECT_ROOT, 'node_modules/.bin/tsx'),
    ['--tsconfig', path.join(PROJECT_ROOT, 'tsconfig.json'), path.join(PROJECT_ROOT, 'src/cli/seed.ts')],
    { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, DATA_DIR: '.data', ...env } },
  );
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, output };
}

/** The demo user's gateway total and batches, as myQuota answers them. */
async function demoUserQuota(port: number, userToken: string): Promise<{ total: number; batches: number }> {
  const answer = (await graphql(port, userToken, '{ myQuota { totalQuota batches { amount } } }')) as {
    data: { myQuota: { totalQuota: number; batches: { amount: number }[] } };
  };
  const { totalQuota, batches } = answer.data.myQuota;
  return { total: totalQuota, batches: batches.reduce((sum, batch) => sum + batch.amount, 0) };
}

/** The user token the start-up banner prints. */
function bannerUserToken(stdout: string): string {
  const token = /user: {2}(\S+)/.exec(stdout)?.[1];
  if (token === undefined) throw new Error(`no user token in the banner:\n${stdout}`);
  return token;
}

/** After a seed: the demo user has batches, and the gateway total the server reads equals their sum. */
async function expectSeededTotals(port: number, userToken: string): Promise<void> {
  const quota = await demoUserQuota(port, userToken);
  expect(quota.batches).toBeGreaterThan(0);
  expect(quota.total).toBe(quota.batches);
}

async function waitForBanner(server: Server, timeoutMs = 45_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout, stderr } = server.output();
    if (stdout.includes('Quota Manager is running')) return stdout;
    if (server.child.exitCode !== null || Date.now() > deadline) {
      server.child.kill('SIGKILL');
      throw new Error(`the server did not start:\n${stdout}\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopServer(server: Server): Promise<number | null> {
  server.child.kill('SIGTERM');
  return server.exit;
}

async function graphql(port: number, token: string, query: string): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return response.json();
}

function logLines(stdout: string): { level: number; msg: string }[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line));
}

/**
 * A production configuration (a real database URL, secrets given): the start-up guards refuse what is
 * missing before anything connects, so the database need not exist.
 */
const PRODUCTION_ENV = {
  DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
  AUTH_JWT_SECRET: 'entry-test-secret-that-is-32-bytes-long',
  VOUCHER_SIGNING_KEY: 'entry-test-voucher-key-32-bytes-long!!',
};

describe('npm start in embedded mode', () => {
  it('prints working admin and user tokens, serves /health, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const server = startServer({ PORT: String(port) });
    try {
      const stdout = await waitForBanner(server);
      expect(stdout).toContain(`http://localhost:${port}/graphql`);
      const admin = /admin: (\S+)/.exec(stdout)?.[1];
      const user = /user: {2}(\S+)/.exec(stdout)?.[1];
      expect(admin).toBeDefined();
      expect(user).toBeDefined();

      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok', database: true });

      const ask = async (token: string) =>
        (await graphql(port, token, '{ viewer { userId isAdmin name } }')) as {
          data: { viewer: { isAdmin: boolean; name: string } };
        };
      expect((await ask(admin!)).data.viewer).toMatchObject({ isAdmin: true, name: 'Demo Admin' });
      expect((await ask(user!)).data.viewer).toMatchObject({ isAdmin: false, name: 'Demo User' });
    } finally {
      const exitCode = await stopServer(server);
      expect(exitCode).toBe(0);
    }
    expect(logLines(server.output().stdout).some((line) => line.msg === 'stopped')).toBe(true);
  }, 90_000);

  it("keeps the gateway simulator's counters across a clean restart (DATA_DIR)", async () => {
    const query = async (port: number, token: string, document: string) => graphql(port, token, document);
    const first = await freePort();
    let server = startServer({ PORT: String(first) });
    let admin: string;
    try {
      admin = /admin: (\S+)/.exec(await waitForBanner(server))![1]!;
      const set = await query(
        first,
        admin,
        'mutation { setGatewayQuota(counter: USED, userId: "keep-me", value: 12.5) { usedQuota } }',
      );
      expect(set).toEqual({ data: { setGatewayQuota: { usedQuota: 12.5 } } });
    } finally {
      expect(await stopServer(server)).toBe(0);
    }
    const second = await freePort();
    server = startServer({ PORT: String(second) });
    try {
      await waitForBanner(server);
      // The same data directory, so the same secrets: the first start's token still verifies.
      expect(await query(second, admin, '{ gatewayQuota(userId: "keep-me") { usedQuota } }')).toEqual({
        data: { gatewayQuota: { usedQuota: 12.5 } },
      });
    } finally {
      expect(await stopServer(server)).toBe(0);
    }
  }, 120_000);

  it('starts with an empty gateway simulator when its saved state is damaged, and keeps the file aside', async () => {
    const file = path.join(cwd, '.data', 'gateway-simulator.json');
    // The folder the earlier tests' servers made, made here too: this test does not need them to run first.
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '{ not json');
    const port = await freePort();
    const server = startServer({ PORT: String(port) });
    try {
      const stdout = await waitForBanner(server);
      const warning = logLines(stdout).find((line) => line.level === 40 && /gateway simulator/.test(line.msg));
      expect(warning?.msg).toMatch(/could not restore the gateway simulator/);
      expect(await readFile(`${file}.damaged`, 'utf8')).toBe('{ not json');
    } finally {
      expect(await stopServer(server)).toBe(0);
    }
    // The clean stop saved the (empty) state anew; the damaged copy is still there to look at.
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ users: {}, employees: {} });
    await rm(`${file}.damaged`);
  }, 90_000);

  it('reads .env from its folder (the environment wins), warns when AUTH_VERIFY=false, and exits 0 on SIGINT', async () => {
    const port = await freePort();
    // AUTH_VERIFY comes only from .env; its PORT loses to the environment's (Node's loadEnvFile never
    // overrides a variable that is already set), so the server answers on `port`, not on 1.
    await writeFile(path.join(cwd, '.env'), 'AUTH_VERIFY=false\nPORT=1\n');
    const server = startServer({ PORT: String(port) });
    try {
      const stdout = await waitForBanner(server);
      const warning = logLines(stdout).find((line) => line.level === 40 && /AUTH_VERIFY=false/.test(line.msg));
      expect(warning?.msg).toMatch(/decoded, not verified/);
      expect(stdout).not.toMatch(/admin: \S+/);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      server.child.kill('SIGINT');
      expect(await server.exit).toBe(0);
      await rm(path.join(cwd, '.env'), { force: true });
    }
    expect(logLines(server.output().stdout).some((line) => line.msg === 'stopped')).toBe(true);
  }, 90_000);

  it('npm run seed with no server running: the next start serves gateway totals that match the seeded batches', async () => {
    const seeded = await runSeed();
    expect(seeded.code, seeded.output).toBe(0);
    expect(seeded.output).toMatch(/seeded \d+ demo grants for \d+ demo users\n/);
    const port = await freePort();
    const server = startServer({ PORT: String(port) });
    try {
      await expectSeededTotals(port, bannerUserToken(await waitForBanner(server)));
    } finally {
      expect(await stopServer(server)).toBe(0);
    }
  }, 120_000);

  it("npm run seed while the server runs: its grants reach that server's gateway simulator at once", async () => {
    // A data directory of its own, never seeded.
    const env = { DATA_DIR: '.data-running' };
    const port = await freePort();
    const server = startServer({ PORT: String(port), ...env });
    try {
      const user = bannerUserToken(await waitForBanner(server));
      expect(await demoUserQuota(port, user)).toEqual({ total: 0, batches: 0 });
      const seeded = await runSeed(env);
      expect(seeded.code, seeded.output).toBe(0);
      await expectSeededTotals(port, user);
    } finally {
      expect(await stopServer(server)).toBe(0);
    }
  }, 120_000);

  it('refuses to start with HR sync on, a real database and no HR URLs (no demo organisation in production)', async () => {
    const server = startServer({
      PORT: String(await freePort()),
      ...PRODUCTION_ENV,
      AIGATEWAY_URL: 'http://127.0.0.1:1',
      HR_SYNC_ENABLED: 'true',
    });
    expect(await server.exit).toBe(1);
    expect(server.output().stderr).toMatch(/HR_SYNC_ENABLED=true needs HR_EMPLOYEES_URL/);
    expect(server.output().stdout).not.toMatch(/HR system: built-in simulator/);
  }, 60_000);

  it('refuses to start with a real database and no AIGATEWAY_URL (no gateway simulator in production)', async () => {
    const server = startServer({ PORT: String(await freePort()), ...PRODUCTION_ENV });
    expect(await server.exit).toBe(1);
    expect(server.output().stderr).toMatch(/AIGATEWAY_URL is required with DATABASE_URL/);
    expect(server.output().stdout).not.toMatch(/AI gateway: built-in simulator/);
  }, 60_000);

  it('a SIGTERM while PostgreSQL is still starting stops it too, and exits 0', async () => {
    const dataDir = '.data-early-stop';
    const postmasterFile = path.join(cwd, dataDir, 'pg', 'postmaster.pid');
    const server = startServer({ PORT: String(await freePort()), DATA_DIR: dataDir });
    await until('the embedded PostgreSQL to start', () => existsSync(postmasterFile), 60_000);
    const postmaster = Number((await readFile(postmasterFile, 'utf8')).split('\n')[0]);
    server.child.kill('SIGTERM');

    expect(await server.exit).toBe(0);
    const lines = logLines(server.output().stdout);
    expect(lines.some((line) => line.msg.startsWith('signal during start-up'))).toBe(true);
    expect(lines.at(-1)?.msg).toBe('stopped');
    expect(processAlive(postmaster)).toBe(false);
    expect(existsSync(path.join(cwd, dataDir, 'server.pid'))).toBe(false);
  }, 90_000);

  it('shuts down cleanly after its PostgreSQL died: "stopped", exit 0, the data directory released', async () => {
    const dataDir = '.data-dead-postgres';
    const server = startServer({ PORT: String(await freePort()), DATA_DIR: dataDir });
    await waitForBanner(server);
    const postmaster = Number((await readFile(path.join(cwd, dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(postmaster, 'SIGINT');
    await until('PostgreSQL to exit', () => !processAlive(postmaster), 30_000);

    expect(await stopServer(server)).toBe(0);
    expect(logLines(server.output().stdout).at(-1)?.msg).toBe('stopped');
    expect(existsSync(path.join(cwd, dataDir, 'server.pid'))).toBe(false);
  }, 90_000);
});
