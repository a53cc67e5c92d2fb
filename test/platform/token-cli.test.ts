import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `npm run token -- --user ID [--admin] [--ttl 1h]` (SPEC §1) mints a token against the configured
 * secret. Run as the script runs it (tsx), in an empty folder with a clean environment.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'cli-test-secret-that-is-32-bytes-long!';

let cwd: string;

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'qm-token-'));
});

afterAll(async () => {
  await rm(cwd, { recursive: true, force: true });
});

async function runTokenCommand(args: string[], env: Record<string, string> = { AUTH_JWT_SECRET: SECRET }) {
  const child = spawn(
    path.join(PROJECT_ROOT, 'node_modules/.bin/tsx'),
    ['--tsconfig', path.join(PROJECT_ROOT, 'tsconfig.json'), path.join(PROJECT_ROOT, 'src/cli/token.ts'), ...args],
    { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, ...env } },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { exitCode, stdout, stderr };
}

describe('npm run token', () => {
  it('prints an admin token for --user u1 --admin --ttl 2h that verifies with the secret', async () => {
    const result = await runTokenCommand(['--user', 'u1', '--admin', '--ttl', '2h']);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const lines = result.stdout.split('\n').filter((line) => line !== '');
    expect(lines).toHaveLength(1);

    const { payload, protectedHeader } = await jwtVerify(lines[0], new TextEncoder().encode(SECRET), {
      algorithms: ['HS256'],
    });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload).toMatchObject({ universal_id: 'u1', sub: 'u1', role: 'admin' });
    expect(payload.exp! - payload.iat!).toBe(2 * 3600);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(120);
    // It does not verify with another secret.
    await expect(
      jwtVerify(lines[0], new TextEncoder().encode('another-secret-that-is-32-bytes-long!!')),
    ).rejects.toThrow();
  }, 60_000);

  it('mints a plain user token (no role) with a name and the default ttl of 1 h', async () => {
    const result = await runTokenCommand(['--user', 'u2', '--name', 'Ada Lovelace']);
    expect(result.exitCode).toBe(0);
    const { payload } = await jwtVerify(result.stdout.trim(), new TextEncoder().encode(SECRET));
    expect(payload.universal_id).toBe('u2');
    expect(payload.name).toBe('Ada Lovelace');
    expect(payload.role).toBeUndefined();
    expect(payload.exp! - payload.iat!).toBe(3600);
  }, 60_000);

  it.each(['soon', '30', '0s', '-1h', '2 fortnights'])(
    'refuses --ttl %s with exit code 2',
    async (ttl) => {
      const result = await runTokenCommand(['--user', 'u1', `--ttl=${ttl}`]);
      expect(result.exitCode).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/--ttl must be a duration/);
    },
    60_000,
  );

  it('refuses a missing --user and an unknown option with exit code 2 and the usage', async () => {
    const missing = await runTokenCommand(['--admin']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/usage: npm run token -- --user ID/);
    const unknown = await runTokenCommand(['--user', 'u1', '--superuser']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/usage:/);
    expect(unknown.stdout).toBe('');
  }, 60_000);

  it('refuses to mint when the server uses a JWKS', async () => {
    const result = await runTokenCommand(['--user', 'u1'], { AUTH_JWKS_URL: 'https://id.example.com/jwks.json' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/AUTH_JWKS_URL/);
    expect(result.stdout).toBe('');
  }, 60_000);
});
