import { isIP } from 'node:net';
import { cronProblem } from './modules/jobs/cron.js';

/**
 * Every environment variable the server reads, parsed and validated once at start (SPEC §10).
 * A bad value stops the start with one line naming the variable and what is wrong; nothing else
 * in the code reads process.env.
 */

export type DefaultExpiryRule = 'end-of-next-month' | 'end-of-month';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AuthConfig {
  /** false = decode-only (the token was verified upstream); logged as a warning at start. */
  verify: boolean;
  /** HS256 secret; null when JWKS is used or it is to be generated (embedded mode). */
  jwtSecret: string | null;
  jwksUrl: string | null;
  /** The algorithm allow-list; tokens signed otherwise are refused. */
  algorithms: string[];
  adminUserIds: string[];
  /** Lower-case header name carrying the token. */
  tokenHeader: string;
  /** Allowed clock skew for exp / nbf, seconds. */
  clockToleranceSeconds: number;
}

export interface GatewayConfig {
  /** null = start the built-in simulator on a free loopback port (embedded mode). */
  url: string | null;
  adminPath: string;
  authHeader: string;
  authValue: string;
  timeoutMs: number;
  /** Retries after the first attempt, for 5xx, 429 and connection failures. */
  retries: number;
  retryBaseDelayMs: number;
}

export interface HrConfig {
  enabled: boolean;
  employeesUrl: string | null;
  employeesKey: string | null;
  departmentsUrl: string | null;
  departmentsKey: string | null;
  maxRemovalRatio: number;
  timeoutMs: number;
}

export interface GraphqlLimits {
  maxDepth: number;
  maxComplexity: number;
  /** Aliases in one operation: guards against alias amplification (10,000 × the same field). */
  maxAliases: number;
  /** Top-level fields in one operation. */
  maxRootFields: number;
  introspection: boolean;
  playground: boolean;
  /** Request bodies above this are refused with 413 before parsing. */
  maxBodyBytes: number;
}

export interface AppConfig {
  port: number;
  host: string;
  /** true when no DATABASE_URL is given: the server runs its own PostgreSQL under dataDir. */
  embeddedDatabase: boolean;
  dataDir: string;
  databaseUrl: string | null;
  authDatabaseUrl: string | null;
  auth: AuthConfig;
  gateway: GatewayConfig;
  /** null = generate (embedded mode only). */
  voucherSigningKey: string | null;
  voucherPreviousKeys: string[];
  timeZone: string;
  defaultExpiry: DefaultExpiryRule;
  scanCron: string;
  /**
   * When quota sync (SYNC_QUOTAS) runs on its own (QUOTA_SYNC_CRON); null = only by triggerScan, as
   * SPEC §9 has it. A gateway write applied after the client gave up, or an instance that died during
   * a chunk of grants, leaves a total that only the user's next change or a quota sync corrects.
   */
  quotaSyncCron: string | null;
  /**
   * Users granted at the same time by one strategy run (STRATEGY_SCAN_CONCURRENCY, 1–16, default 8).
   * Each grant in flight holds a database connection for its transaction; the pool has 20, and
   * requests, claims and other runs need the rest.
   */
  strategyScanConcurrency: number;
  hr: HrConfig;
  githubStarRequiredRepo: string | null;
  logLevel: LogLevel;
  /** ['*'] = any origin, without credentials. */
  corsOrigins: string[];
  graphql: GraphqlLimits;
  shutdownTimeoutMs: number;
  /**
   * A job run whose heartbeat is older than this is taken for abandoned (its instance died) and marked
   * FAILED, which frees its job (JOB_STALE_AFTER_SECONDS, default 30). Heartbeats come 5 times as often.
   */
  jobStaleAfterMs: number;
  /** GET /metrics (Prometheus text) and the process metrics behind it; METRICS_ENABLED, default true. */
  metricsEnabled: boolean;
  /** How long an idempotencyKey is remembered (IDEMPOTENCY_KEY_RETENTION_HOURS, at least 24). */
  idempotencyKeyRetentionHours: number;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** A small reader that remembers which variable it is reading, so every error names it. */
class EnvReader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    if (value === undefined) return undefined;
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optional(name: string): string | null {
    return this.raw(name) ?? null;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value)) throw new ConfigError(name, `must be a whole number, got "${value}"`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    return parsed;
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!/^-?\d+(\.\d+)?$/.test(value) || !Number.isFinite(parsed)) {
      throw new ConfigError(name, `must be a number, got "${value}"`);
    }
    if (parsed < min || parsed > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    return parsed;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(lower)) return true;
    if (['false', '0', 'no', 'off'].includes(lower)) return false;
    throw new ConfigError(name, `must be true or false, got "${value}"`);
  }

  list(name: string): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    return value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${value}"`);
    }
    return value as T;
  }

  /** An HTTP header name (RFC 9110 token), lower-cased. */
  headerName(name: string, fallback: string): string {
    const value = this.string(name, fallback).toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(value)) {
      throw new ConfigError(name, `must be an HTTP header name (letters, digits, "-"), got "${value}"`);
    }
    return value;
  }

  /** An HTTP header value Node will send: no control characters but tab, nothing beyond Latin-1. Often a secret: never echoed. */
  headerValue(name: string, fallback: string): string {
    const value = this.string(name, fallback);
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(value)) {
      throw new ConfigError(
        name,
        'must be printable text an HTTP header can carry (no control characters, Latin-1 only)',
      );
    }
    return value;
  }

  /** A host name or IP address to listen on. */
  host(name: string, fallback: string): string {
    const value = this.string(name, fallback);
    const hostName = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
    if (isIP(value) === 0 && !hostName.test(value)) {
      throw new ConfigError(name, `must be a host name or an IP address, got "${value}"`);
    }
    return value;
  }

  url(name: string, protocols: string[]): string | null {
    const value = this.raw(name);
    if (value === undefined) return null;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(name, `must be a URL, got "${redact(value)}"`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
    }
    return value;
  }
}

/** Never echo credentials from a URL into a log line. */
function redact(value: string): string {
  return value.replace(/\/\/[^@/]*@/, '//***@');
}

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const MIN_KEY_BYTES = 32;
const AES_KEY_BYTES = [16, 24, 32];
const SUPPORTED_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

export function loadConfig(env: Env = process.env): AppConfig {
  const read = new EnvReader(env);

  const databaseUrl = read.url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const embeddedDatabase = databaseUrl === null;
  const authDatabaseUrl = read.url('AUTH_DATABASE_URL', ['postgres:', 'postgresql:']);

  const timeZone = read.string('TZ_NAME', 'Asia/Shanghai');
  if (!isValidTimeZone(timeZone)) throw new ConfigError('TZ_NAME', `is not a known IANA time zone: "${timeZone}"`);

  const scanCron = read.string('SCAN_CRON', '0 0 * * * *');
  const cronError = cronProblem(scanCron, timeZone);
  if (cronError) throw new ConfigError('SCAN_CRON', `is not a valid cron expression: ${cronError}`);
  const quotaSyncCron = read.optional('QUOTA_SYNC_CRON');
  const quotaSyncCronError = quotaSyncCron === null ? null : cronProblem(quotaSyncCron, timeZone);
  if (quotaSyncCronError) {
    throw new ConfigError('QUOTA_SYNC_CRON', `is not a valid cron expression: ${quotaSyncCronError}`);
  }

  const auth = readAuth(read, embeddedDatabase);

  const voucherSigningKey = read.optional('VOUCHER_SIGNING_KEY');
  if (voucherSigningKey !== null && Buffer.byteLength(voucherSigningKey) < MIN_KEY_BYTES) {
    throw new ConfigError('VOUCHER_SIGNING_KEY', `must be at least ${MIN_KEY_BYTES} bytes`);
  }
  if (voucherSigningKey === null && !embeddedDatabase) {
    throw new ConfigError('VOUCHER_SIGNING_KEY', `is required with DATABASE_URL (at least ${MIN_KEY_BYTES} bytes)`);
  }
  const voucherPreviousKeys = read.list('VOUCHER_PREVIOUS_KEYS');
  if (voucherPreviousKeys.some((key) => Buffer.byteLength(key) < MIN_KEY_BYTES)) {
    throw new ConfigError('VOUCHER_PREVIOUS_KEYS', `must hold keys of at least ${MIN_KEY_BYTES} bytes each`);
  }

  const hr = readHr(read);

  const corsOrigins = read.list('CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (origin === '*') continue;
    try {
      const parsed = new URL(origin);
      // Origins are compared exactly, so a wildcard host would silently never match.
      if (parsed.origin !== origin || parsed.hostname.includes('*')) throw new Error('not an origin');
    } catch {
      throw new ConfigError('CORS_ORIGINS', `must list origins like https://admin.example.com, got "${origin}"`);
    }
  }

  return {
    port: read.integer('PORT', 8099, 1, 65535),
    host: read.host('HOST', embeddedDatabase ? '127.0.0.1' : '0.0.0.0'),
    embeddedDatabase,
    dataDir: read.string('DATA_DIR', '.data'),
    databaseUrl,
    authDatabaseUrl,
    auth,
    gateway: {
      url: read.url('AIGATEWAY_URL', ['http:', 'https:']),
      adminPath: normalisePath(read, 'AIGATEWAY_ADMIN_PATH', '/v1/chat/completions/quota'),
      authHeader: read.headerName('AIGATEWAY_AUTH_HEADER', 'x-admin-key'),
      authValue: read.headerValue('AIGATEWAY_AUTH_VALUE', ''),
      timeoutMs: read.integer('AIGATEWAY_TIMEOUT_MS', 30_000, 1, 600_000),
      retries: read.integer('AIGATEWAY_RETRIES', 3, 0, 10),
      retryBaseDelayMs: read.integer('AIGATEWAY_RETRY_BASE_MS', 100, 0, 60_000),
    },
    voucherSigningKey,
    voucherPreviousKeys,
    timeZone,
    defaultExpiry: read.oneOf('QUOTA_DEFAULT_EXPIRY', 'end-of-next-month', ['end-of-next-month', 'end-of-month']),
    scanCron,
    quotaSyncCron,
    strategyScanConcurrency: read.integer('STRATEGY_SCAN_CONCURRENCY', 8, 1, 16),
    hr,
    githubStarRequiredRepo: read.optional('GITHUB_STAR_REQUIRED_REPO'),
    logLevel: read.oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    corsOrigins: corsOrigins.length === 0 ? ['*'] : corsOrigins,
    graphql: {
      maxDepth: read.integer('GRAPHQL_MAX_DEPTH', 10, 1, 100),
      maxComplexity: read.integer('GRAPHQL_MAX_COMPLEXITY', 1000, 1, 1_000_000),
      maxAliases: read.integer('GRAPHQL_MAX_ALIASES', 30, 0, 10_000),
      maxRootFields: read.integer('GRAPHQL_MAX_ROOT_FIELDS', 20, 1, 1000),
      introspection: read.boolean('GRAPHQL_INTROSPECTION', true),
      playground: read.boolean('GRAPHQL_PLAYGROUND', true),
      maxBodyBytes: read.integer('GRAPHQL_MAX_BODY_BYTES', 1_000_000, 1024, 100_000_000),
    },
    shutdownTimeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    jobStaleAfterMs: read.integer('JOB_STALE_AFTER_SECONDS', 30, 5, 3600) * 1000,
    metricsEnabled: read.boolean('METRICS_ENABLED', true),
    // At least a day: clients retry across a night's outage and must still find their first answer.
    idempotencyKeyRetentionHours: read.integer('IDEMPOTENCY_KEY_RETENTION_HOURS', 24, 24, 24 * 366),
  };
}

function readAuth(read: EnvReader, embeddedDatabase: boolean): AuthConfig {
  const verify = read.boolean('AUTH_VERIFY', true);
  const jwtSecret = read.optional('AUTH_JWT_SECRET');
  const jwksUrl = read.url('AUTH_JWKS_URL', ['http:', 'https:']);
  if (jwtSecret !== null && jwksUrl !== null) {
    throw new ConfigError('AUTH_JWKS_URL', 'cannot be combined with AUTH_JWT_SECRET; set one of them');
  }
  if (verify && jwtSecret !== null && Buffer.byteLength(jwtSecret) < MIN_KEY_BYTES && !embeddedDatabase) {
    throw new ConfigError('AUTH_JWT_SECRET', `must be at least ${MIN_KEY_BYTES} bytes for HS256`);
  }
  if (verify && jwtSecret === null && jwksUrl === null && !embeddedDatabase) {
    throw new ConfigError(
      'AUTH_JWT_SECRET',
      'or AUTH_JWKS_URL is required with DATABASE_URL (or set AUTH_VERIFY=false)',
    );
  }
  const defaultAlgorithms = jwksUrl !== null ? ['RS256', 'ES256'] : ['HS256'];
  const algorithms = read.list('AUTH_ALGORITHMS');
  for (const algorithm of algorithms) {
    if (!SUPPORTED_ALGORITHMS.includes(algorithm)) {
      throw new ConfigError('AUTH_ALGORITHMS', `lists unsupported algorithm "${algorithm}"`);
    }
    const symmetric = algorithm.startsWith('HS');
    if (jwksUrl !== null && symmetric) {
      throw new ConfigError('AUTH_ALGORITHMS', `cannot allow ${algorithm} with AUTH_JWKS_URL (HMAC/RSA confusion)`);
    }
    if (jwksUrl === null && !symmetric) {
      throw new ConfigError('AUTH_ALGORITHMS', `cannot allow ${algorithm} without AUTH_JWKS_URL`);
    }
  }
  const tokenHeader = read.headerName('AUTH_TOKEN_HEADER', 'authorization');
  return {
    verify,
    jwtSecret,
    jwksUrl,
    algorithms: algorithms.length === 0 ? defaultAlgorithms : algorithms,
    adminUserIds: read.list('AUTH_ADMIN_USER_IDS'),
    tokenHeader,
    clockToleranceSeconds: read.integer('AUTH_CLOCK_TOLERANCE_SECONDS', 30, 0, 600),
  };
}

function readHr(read: EnvReader): HrConfig {
  const enabled = read.boolean('HR_SYNC_ENABLED', false);
  const employeesKey = read.optional('HR_EMPLOYEES_KEY');
  const departmentsKey = read.optional('HR_DEPARTMENTS_KEY');
  for (const [name, key] of [
    ['HR_EMPLOYEES_KEY', employeesKey],
    ['HR_DEPARTMENTS_KEY', departmentsKey],
  ] as const) {
    if (key !== null && !AES_KEY_BYTES.includes(Buffer.byteLength(key))) {
      throw new ConfigError(name, `must be 16, 24 or 32 bytes (AES-128/192/256), got ${Buffer.byteLength(key)}`);
    }
  }
  const employeesUrl = read.url('HR_EMPLOYEES_URL', ['http:', 'https:']);
  const departmentsUrl = read.url('HR_DEPARTMENTS_URL', ['http:', 'https:']);
  if (enabled && (employeesUrl === null) !== (departmentsUrl === null)) {
    throw new ConfigError(
      employeesUrl === null ? 'HR_EMPLOYEES_URL' : 'HR_DEPARTMENTS_URL',
      'must be set with the other HR URL',
    );
  }
  if (enabled && employeesUrl !== null && (employeesKey === null || departmentsKey === null)) {
    throw new ConfigError(
      employeesKey === null ? 'HR_EMPLOYEES_KEY' : 'HR_DEPARTMENTS_KEY',
      'is required with the HR URLs',
    );
  }
  return {
    enabled,
    employeesUrl,
    employeesKey,
    departmentsUrl,
    departmentsKey,
    maxRemovalRatio: read.number('HR_MAX_REMOVAL_RATIO', 0.5, 0, 1),
    timeoutMs: read.integer('HR_TIMEOUT_MS', 30_000, 1, 600_000),
  };
}

function normalisePath(read: EnvReader, name: string, fallback: string): string {
  const value = read.string(name, fallback);
  if (!value.startsWith('/') || /[?#\s]/.test(value)) {
    throw new ConfigError(name, `must be a path starting with "/", got "${value}"`);
  }
  return value.replace(/\/+$/, '');
}
