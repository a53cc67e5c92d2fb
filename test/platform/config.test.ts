import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

/**
 * SPEC §10: every variable has a default that works in embedded mode, and a bad value stops the
 * start with a message naming the variable. Each case below is one bad value of one variable.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATABASE_URL = 'postgres://app:pw@db.internal:5432/quota';
const SECRET_32 = 'a-jwt-secret-of-exactly-32-bytes';
const VOUCHER_KEY_32 = 'a-voucher-key-of-32-bytes-long!!';

/** A complete, valid production-style environment (DATABASE_URL set, so secrets are required). */
const PRODUCTION_ENV = {
  DATABASE_URL,
  AUTH_JWT_SECRET: SECRET_32,
  VOUCHER_SIGNING_KEY: VOUCHER_KEY_32,
};

/** The ConfigError that loading `env` ends with (fails the test when it loads). */
function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected a configuration error for ${JSON.stringify(env)}`);
}

function expectRefused(env: Record<string, string>, variable: string, detail?: RegExp): ConfigError {
  const error = configErrorOf(env);
  expect(error.variable).toBe(variable);
  expect(error.message.startsWith(`${variable} `)).toBe(true);
  if (detail) expect(error.message).toMatch(detail);
  return error;
}

describe('defaults (embedded mode: nothing configured)', () => {
  it('loads an empty environment with the documented defaults', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8099);
    expect(config.embeddedDatabase).toBe(true);
    expect(config.databaseUrl).toBeNull();
    expect(config.timeZone).toBe('Asia/Shanghai');
    expect(config.defaultExpiry).toBe('end-of-next-month');
    expect(config.scanCron).toBe('0 0 * * * *');
    expect(config.corsOrigins).toEqual(['*']);
    expect(config.auth).toMatchObject({
      verify: true,
      jwtSecret: null,
      jwksUrl: null,
      algorithms: ['HS256'],
      tokenHeader: 'authorization',
      clockToleranceSeconds: 30,
      adminUserIds: [],
    });
    expect(config.graphql).toMatchObject({ maxDepth: 10, maxComplexity: 1000, introspection: true, playground: true });
    expect(config.gateway).toMatchObject({
      url: null,
      adminPath: '/v1/chat/completions/quota',
      authHeader: 'x-admin-key',
      timeoutMs: 30_000,
      retries: 3,
      retryBaseDelayMs: 100,
    });
    expect(config.hr).toMatchObject({ enabled: false, maxRemovalRatio: 0.5 });
    expect(config.voucherSigningKey).toBeNull();
    expect(config.logLevel).toBe('info');
    expect(config.jobStaleAfterMs).toBe(30_000);
    expect(config.strategyScanConcurrency).toBe(8);
  });

  it('treats blank values as unset', () => {
    const config = loadConfig({ PORT: '  ', TZ_NAME: '', DATABASE_URL: ' ' });
    expect(config.port).toBe(8099);
    expect(config.timeZone).toBe('Asia/Shanghai');
    expect(config.embeddedDatabase).toBe(true);
  });

  it('accepts a complete production environment and reads every list', () => {
    const config = loadConfig({
      ...PRODUCTION_ENV,
      PORT: '9000',
      TZ_NAME: 'Europe/Berlin',
      QUOTA_DEFAULT_EXPIRY: 'end-of-month',
      SCAN_CRON: '@hourly',
      AUTH_ADMIN_USER_IDS: ' boss , chief ,',
      AUTH_TOKEN_HEADER: 'X-Auth-Token',
      CORS_ORIGINS: 'https://admin.example.com, http://localhost:5173',
      VOUCHER_PREVIOUS_KEYS: `${'k'.repeat(32)},${'j'.repeat(40)}`,
      HR_EMPLOYEES_KEY: 'k'.repeat(16),
      HR_DEPARTMENTS_KEY: 'k'.repeat(24),
      AIGATEWAY_ADMIN_PATH: '/admin/quota/',
      GRAPHQL_INTROSPECTION: 'off',
      GRAPHQL_PLAYGROUND: 'no',
    });
    expect(config.port).toBe(9000);
    expect(config.embeddedDatabase).toBe(false);
    expect(config.auth.adminUserIds).toEqual(['boss', 'chief']);
    expect(config.auth.tokenHeader).toBe('x-auth-token');
    expect(config.corsOrigins).toEqual(['https://admin.example.com', 'http://localhost:5173']);
    expect(config.voucherPreviousKeys).toHaveLength(2);
    expect(config.gateway.adminPath).toBe('/admin/quota');
    expect(config.graphql.introspection).toBe(false);
    expect(config.graphql.playground).toBe(false);
  });
});

describe('configuration errors name the variable', () => {
  it.each([
    ['abc', /whole number/],
    ['80.5', /whole number/],
    ['1e3', /whole number/],
    ['0', /between 1 and 65535/],
    ['-1', /between 1 and 65535/],
    ['65536', /between 1 and 65535/],
  ])('PORT=%s', (value, detail) => {
    expectRefused({ PORT: value }, 'PORT', detail);
  });

  it('PORT at both ends of the range is accepted', () => {
    expect(loadConfig({ PORT: '1' }).port).toBe(1);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
  });

  it('STRATEGY_SCAN_CONCURRENCY at both ends of its range is accepted', () => {
    expect(loadConfig({ STRATEGY_SCAN_CONCURRENCY: '1' }).strategyScanConcurrency).toBe(1);
    expect(loadConfig({ STRATEGY_SCAN_CONCURRENCY: '16' }).strategyScanConcurrency).toBe(16);
    expectRefused({ STRATEGY_SCAN_CONCURRENCY: '17' }, 'STRATEGY_SCAN_CONCURRENCY', /between 1 and 16/);
  });

  it('QUOTA_DEFAULT_EXPIRY must be a known rule', () => {
    expectRefused({ QUOTA_DEFAULT_EXPIRY: 'end-of-year' }, 'QUOTA_DEFAULT_EXPIRY', /end-of-next-month, end-of-month/);
    expect(loadConfig({ QUOTA_DEFAULT_EXPIRY: 'end-of-month' }).defaultExpiry).toBe('end-of-month');
  });

  it.each(['Mars/Olympus_Mons', 'GMT+25', 'Asia/Shangai'])('TZ_NAME=%s is not a time zone', (zone) => {
    expectRefused({ TZ_NAME: zone }, 'TZ_NAME', /IANA time zone/);
  });

  it.each([
    ['not a cron', /5 or 6 fields/],
    ['0 0 * * * * *', /expected 5 or 6 fields.*got 7/],
    ['* * * *', /got 4/],
    ['@reboot', /unknown descriptor/],
    ['@fortnightly', /unknown descriptor/],
    ['61 * * * * *', /cron/i],
    ['0 0 25 * * *', /cron/i],
  ])('SCAN_CRON="%s"', (value, detail) => {
    expectRefused({ SCAN_CRON: value }, 'SCAN_CRON', detail);
  });

  it.each(['0 0 8 * * *', '*/5 * * * *', '@hourly', '@daily', '@midnight', '@yearly', '@annually', '@weekly'])(
    'SCAN_CRON="%s" is accepted',
    (value) => {
      expect(loadConfig({ SCAN_CRON: value }).scanCron).toBe(value);
    },
  );

  it('QUOTA_SYNC_CRON is off unless set; a valid cron is taken, an invalid one refused', () => {
    expect(loadConfig({}).quotaSyncCron).toBeNull();
    expect(loadConfig({ QUOTA_SYNC_CRON: '0 30 * * * *' }).quotaSyncCron).toBe('0 30 * * * *');
    expect(loadConfig({ QUOTA_SYNC_CRON: '@daily' }).quotaSyncCron).toBe('@daily');
    expectRefused({ QUOTA_SYNC_CRON: '61 * * * * *' }, 'QUOTA_SYNC_CRON', /cron/i);
    expectRefused({ QUOTA_SYNC_CRON: '@reboot' }, 'QUOTA_SYNC_CRON', /unknown descriptor/);
  });

  it('VOUCHER_SIGNING_KEY shorter than 32 bytes is refused, in embedded mode too', () => {
    expectRefused({ VOUCHER_SIGNING_KEY: 'k'.repeat(31) }, 'VOUCHER_SIGNING_KEY', /at least 32 bytes/);
    expectRefused({ ...PRODUCTION_ENV, VOUCHER_SIGNING_KEY: 'k'.repeat(31) }, 'VOUCHER_SIGNING_KEY');
    expect(loadConfig({ VOUCHER_SIGNING_KEY: 'k'.repeat(32) }).voucherSigningKey).toBe('k'.repeat(32));
  });

  it('VOUCHER_SIGNING_KEY is measured in bytes, not characters', () => {
    // 11 characters of 3 UTF-8 bytes each = 33 bytes; 10 of them = 30 bytes.
    expect(loadConfig({ VOUCHER_SIGNING_KEY: '钥'.repeat(11) }).voucherSigningKey).toBe('钥'.repeat(11));
    expectRefused({ VOUCHER_SIGNING_KEY: '钥'.repeat(10) }, 'VOUCHER_SIGNING_KEY');
  });

  it('VOUCHER_SIGNING_KEY is required with DATABASE_URL, generated in embedded mode', () => {
    expectRefused({ DATABASE_URL, AUTH_JWT_SECRET: SECRET_32 }, 'VOUCHER_SIGNING_KEY', /required with DATABASE_URL/);
    expect(loadConfig({}).voucherSigningKey).toBeNull();
  });

  it('VOUCHER_PREVIOUS_KEYS must each be 32 bytes or more', () => {
    expectRefused({ VOUCHER_PREVIOUS_KEYS: `${'k'.repeat(32)},short` }, 'VOUCHER_PREVIOUS_KEYS', /32 bytes/);
  });

  it('AUTH_JWT_SECRET is required with DATABASE_URL unless a JWKS or decode-only mode is configured', () => {
    expectRefused({ DATABASE_URL, VOUCHER_SIGNING_KEY: VOUCHER_KEY_32 }, 'AUTH_JWT_SECRET', /AUTH_JWKS_URL/);
    expect(loadConfig({ DATABASE_URL, VOUCHER_SIGNING_KEY: VOUCHER_KEY_32, AUTH_VERIFY: 'false' }).auth.verify).toBe(
      false,
    );
    expect(
      loadConfig({ DATABASE_URL, VOUCHER_SIGNING_KEY: VOUCHER_KEY_32, AUTH_JWKS_URL: 'https://id.example.com/jwks' })
        .auth.algorithms,
    ).toEqual(['RS256', 'ES256']);
  });

  it('AUTH_JWT_SECRET shorter than 32 bytes is refused with DATABASE_URL', () => {
    expectRefused({ ...PRODUCTION_ENV, AUTH_JWT_SECRET: 's'.repeat(31) }, 'AUTH_JWT_SECRET', /at least 32 bytes/);
    expect(loadConfig({ ...PRODUCTION_ENV, AUTH_JWT_SECRET: 's'.repeat(32) }).auth.jwtSecret).toBe('s'.repeat(32));
  });

  it('AUTH_JWT_SECRET together with AUTH_JWKS_URL is refused', () => {
    const error = expectRefused(
      { ...PRODUCTION_ENV, AUTH_JWKS_URL: 'https://id.example.com/jwks' },
      'AUTH_JWKS_URL',
      /AUTH_JWT_SECRET/,
    );
    expect(error.message).toMatch(/one of them/);
    // Embedded mode does not relax it.
    expectRefused({ AUTH_JWT_SECRET: SECRET_32, AUTH_JWKS_URL: 'https://id.example.com/jwks' }, 'AUTH_JWKS_URL');
  });

  it('AUTH_ALGORITHMS: an RS algorithm without JWKS, HS with JWKS, or an unknown one are refused', () => {
    expectRefused({ ...PRODUCTION_ENV, AUTH_ALGORITHMS: 'RS256' }, 'AUTH_ALGORITHMS', /without AUTH_JWKS_URL/);
    expectRefused({ ...PRODUCTION_ENV, AUTH_ALGORITHMS: 'HS256,ES256' }, 'AUTH_ALGORITHMS', /ES256/);
    const jwksEnv = { DATABASE_URL, VOUCHER_SIGNING_KEY: VOUCHER_KEY_32, AUTH_JWKS_URL: 'https://id.example.com/jwks' };
    expectRefused({ ...jwksEnv, AUTH_ALGORITHMS: 'RS256,HS256' }, 'AUTH_ALGORITHMS', /HS256 with AUTH_JWKS_URL/);
    expectRefused({ ...PRODUCTION_ENV, AUTH_ALGORITHMS: 'none' }, 'AUTH_ALGORITHMS', /unsupported algorithm "none"/);
    expect(loadConfig({ ...jwksEnv, AUTH_ALGORITHMS: 'ES256' }).auth.algorithms).toEqual(['ES256']);
    expect(loadConfig({ ...PRODUCTION_ENV, AUTH_ALGORITHMS: 'HS512' }).auth.algorithms).toEqual(['HS512']);
  });

  it.each([
    ['AUTH_VERIFY', 'maybe'],
    ['HR_SYNC_ENABLED', '2'],
    ['GRAPHQL_INTROSPECTION', 'nope'],
    ['GRAPHQL_PLAYGROUND', 'enabled'],
  ])('%s=%s is not a boolean', (variable, value) => {
    expectRefused({ [variable]: value }, variable, /true or false/);
  });

  it.each(['true', 'TRUE', '1', 'yes', 'on'])('booleans accept %s as true', (value) => {
    expect(loadConfig({ GRAPHQL_INTROSPECTION: value }).graphql.introspection).toBe(true);
  });

  it.each([
    ['DATABASE_URL', 'not a url', /must be a URL/],
    ['DATABASE_URL', 'mysql://app:pw@db/quota', /must use postgres: or postgresql:/],
    ['AUTH_DATABASE_URL', 'http://users.example.com', /must use postgres/],
    ['AIGATEWAY_URL', 'ftp://gateway.example.com', /must use http: or https:/],
    ['AIGATEWAY_URL', 'gateway:8080', /must use http: or https:/],
    ['AUTH_JWKS_URL', 'jwks.json', /must be a URL/],
    ['HR_EMPLOYEES_URL', 'file:///etc/passwd', /must use http: or https:/],
    ['HR_DEPARTMENTS_URL', '::', /must be a URL/],
  ])('%s=%s is not an acceptable URL', (variable, value, detail) => {
    expectRefused({ [variable]: value }, variable, detail);
  });

  it('never echoes the password of a bad database URL', () => {
    const unparsable = expectRefused({ DATABASE_URL: 'postgres://app:hunter2-secret@db host/quota' }, 'DATABASE_URL');
    expect(unparsable.message).not.toContain('hunter2-secret');
    const wrongScheme = expectRefused({ DATABASE_URL: 'mysql://app:hunter2-secret@db/quota' }, 'DATABASE_URL');
    expect(wrongScheme.message).not.toContain('hunter2-secret');
  });

  it.each([
    ['HR_EMPLOYEES_KEY', 'k'.repeat(10), /got 10/],
    ['HR_EMPLOYEES_KEY', 'k'.repeat(33), /got 33/],
    ['HR_DEPARTMENTS_KEY', 'k'.repeat(31), /16, 24 or 32 bytes/],
    ['HR_DEPARTMENTS_KEY', '钥'.repeat(6), /got 18/],
  ])('%s of a wrong length is refused', (variable, value, detail) => {
    expectRefused({ [variable]: value }, variable, detail);
  });

  it.each([16, 24, 32])('HR keys of %i bytes are accepted', (length) => {
    const config = loadConfig({ HR_EMPLOYEES_KEY: 'k'.repeat(length), HR_DEPARTMENTS_KEY: 'd'.repeat(length) });
    expect(config.hr.employeesKey).toHaveLength(length);
  });

  it('HR sync needs both URLs and both keys', () => {
    const urls = { HR_EMPLOYEES_URL: 'https://hr.example.com/e', HR_DEPARTMENTS_URL: 'https://hr.example.com/d' };
    const keys = { HR_EMPLOYEES_KEY: 'k'.repeat(32), HR_DEPARTMENTS_KEY: 'k'.repeat(32) };
    expectRefused(
      { HR_SYNC_ENABLED: 'true', HR_EMPLOYEES_URL: urls.HR_EMPLOYEES_URL, ...keys },
      'HR_DEPARTMENTS_URL',
      /other HR URL/,
    );
    expectRefused(
      { HR_SYNC_ENABLED: 'true', HR_DEPARTMENTS_URL: urls.HR_DEPARTMENTS_URL, ...keys },
      'HR_EMPLOYEES_URL',
    );
    expectRefused(
      { HR_SYNC_ENABLED: 'true', ...urls, HR_DEPARTMENTS_KEY: 'k'.repeat(32) },
      'HR_EMPLOYEES_KEY',
      /required/,
    );
    expectRefused({ HR_SYNC_ENABLED: 'true', ...urls, HR_EMPLOYEES_KEY: 'k'.repeat(32) }, 'HR_DEPARTMENTS_KEY');
    expect(loadConfig({ HR_SYNC_ENABLED: 'true', ...urls, ...keys }).hr.enabled).toBe(true);
  });

  it.each(['1.5', '-0.1', 'half'])('HR_MAX_REMOVAL_RATIO=%s is refused', (value) => {
    expectRefused({ HR_MAX_REMOVAL_RATIO: value }, 'HR_MAX_REMOVAL_RATIO');
  });

  it.each([
    'admin.example.com',
    'https://admin.example.com/',
    'https://admin.example.com/app',
    'https://admin.example.com?x=1',
    'https://*.example.com',
  ])('CORS_ORIGINS listing "%s" is refused', (origin) => {
    expectRefused({ CORS_ORIGINS: `https://ok.example.com,${origin}` }, 'CORS_ORIGINS', /origins like/);
  });

  it.each([
    ['GRAPHQL_MAX_DEPTH', '0'],
    ['GRAPHQL_MAX_DEPTH', 'deep'],
    ['GRAPHQL_MAX_COMPLEXITY', '0'],
    ['GRAPHQL_MAX_COMPLEXITY', '1.5'],
    ['GRAPHQL_MAX_ALIASES', '-1'],
    ['GRAPHQL_MAX_ROOT_FIELDS', '0'],
    ['GRAPHQL_MAX_BODY_BYTES', '100'],
    ['AIGATEWAY_TIMEOUT_MS', '0'],
    ['AIGATEWAY_RETRIES', '11'],
    ['AUTH_CLOCK_TOLERANCE_SECONDS', '-5'],
    ['SHUTDOWN_TIMEOUT_MS', 'soon'],
    // Below 5 s a slow heartbeat write would pass a live run for a dead one.
    ['JOB_STALE_AFTER_SECONDS', '4'],
    // Keys must outlive a day of client retries (issue 6).
    ['IDEMPOTENCY_KEY_RETENTION_HOURS', '23'],
    ['IDEMPOTENCY_KEY_RETENTION_HOURS', 'a day'],
    // Each grant in flight holds a pooled connection: the pool (20) must keep some for requests.
    ['STRATEGY_SCAN_CONCURRENCY', '0'],
    ['STRATEGY_SCAN_CONCURRENCY', '17'],
    ['STRATEGY_SCAN_CONCURRENCY', 'many'],
  ])('%s=%s is out of range or not a number', (variable, value) => {
    expectRefused({ [variable]: value }, variable);
  });

  it.each([
    ['LOG_LEVEL', 'verbose'],
    ['AUTH_TOKEN_HEADER', 'x auth token'],
    ['AUTH_TOKEN_HEADER', 'x-token:'],
    ['AIGATEWAY_ADMIN_PATH', 'v1/quota'],
    ['AIGATEWAY_ADMIN_PATH', '/v1/quota?x=1'],
    // Node refuses to send such headers: every gateway call would fail, naming nothing.
    ['AIGATEWAY_AUTH_HEADER', 'x admin key'],
    ['AIGATEWAY_AUTH_HEADER', 'x-admin-key:'],
    ['AIGATEWAY_AUTH_HEADER', 'ключ'],
    ['AIGATEWAY_AUTH_VALUE', 'secret\u0001value'],
    ['AIGATEWAY_AUTH_VALUE', 'ключ'],
    ['HOST', 'not a host!'],
    ['HOST', 'under_score.example'],
  ])('%s=%s is refused', (variable, value) => {
    expectRefused({ [variable]: value }, variable);
  });

  it('never repeats an AIGATEWAY_AUTH_VALUE it refuses (it is a secret)', () => {
    expect(expectRefused({ AIGATEWAY_AUTH_VALUE: 'tØp-sécret\u0007' }, 'AIGATEWAY_AUTH_VALUE').message).not.toMatch(
      /sécret/,
    );
  });

  it('accepts header names with the punctuation HTTP allows, Latin-1 keys, host names and addresses', () => {
    const config = loadConfig({
      AIGATEWAY_AUTH_HEADER: 'X-Admin_Key.v2',
      AIGATEWAY_AUTH_VALUE: 'key with spaces and é',
      HOST: '::1',
    });
    expect(config.gateway).toMatchObject({ authHeader: 'x-admin_key.v2', authValue: 'key with spaces and é' });
    expect(config.host).toBe('::1');
    for (const host of ['0.0.0.0', '127.0.0.1', 'localhost', 'api.internal.example.com']) {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    }
  });
});

describe('the entry point', () => {
  it('exits 1 with one line on stderr naming PORT when PORT is not a number', async () => {
    // A clean environment in an empty folder: no .env, no DATABASE_URL from the test run.
    const cwd = await mkdtemp(path.join(tmpdir(), 'qm-config-'));
    try {
      const tsx = path.join(PROJECT_ROOT, 'node_modules/.bin/tsx');
      const child = spawn(
        tsx,
        ['--tsconfig', path.join(PROJECT_ROOT, 'tsconfig.json'), path.join(PROJECT_ROOT, 'src/main.ts')],
        { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? cwd, PORT: 'abc' } },
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

      expect(exitCode).toBe(1);
      const lines = stderr.split('\n').filter((line) => line.trim() !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('PORT');
      expect(lines[0]).toContain('"abc"');
      expect(lines[0]).not.toMatch(/\bat .*\(|node:internal|\.ts:\d+/);
      expect(stdout).toBe('');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 60_000);
});
