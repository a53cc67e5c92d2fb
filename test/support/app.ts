import { type RunningApp, startApp } from '../../src/app.js';
import type { Clock } from '../../src/clock.js';
import { type AppConfig, loadConfig } from '../../src/config.js';
import { type Logger, silentLogger } from '../../src/logger.js';
import { type MintOptions, mintToken } from '../../src/modules/auth/token-verifier.js';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { dropDatabase, uniqueDatabaseUrl } from './database.js';

export const TEST_JWT_SECRET = 'test-jwt-secret-that-is-32-bytes-long!!';
export const TEST_VOUCHER_KEY = 'test-voucher-signing-key-32-bytes-long!!';
export const TEST_ADMIN_ID = 'admin-1';
export const TEST_USER_ID = 'user-1';

export interface GraphqlResponse<T = Record<string, unknown>> {
  status: number;
  data: T | null;
  errors: { message: string; extensions?: Record<string, unknown>; path?: (string | number)[] }[] | undefined;
  headers: Headers;
}

export interface TestApp {
  app: RunningApp;
  config: AppConfig;
  simulator: GatewaySimulator;
  /** http://127.0.0.1:port (no path). */
  baseUrl: string;
  databaseUrl: string;
  token(options: MintOptions): Promise<string>;
  adminToken: string;
  userToken: string;
  /** POSTs one operation to /graphql over real HTTP. */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    options?: { token?: string | null; headers?: Record<string, string> },
  ): Promise<GraphqlResponse<T>>;
  stop(): Promise<void>;
}

export interface TestAppOptions {
  label: string;
  env?: Record<string, string>;
  clock?: Clock;
  /** Reuse a database (e.g. a second instance on the same one). */
  databaseUrl?: string;
  simulator?: GatewaySimulator;
  /** Where the app logs (default: nowhere); tests that assert on log lines pass their own. */
  logger?: Logger;
  /** Run the cron schedules (off by default: tests trigger jobs by hand). */
  schedule?: boolean;
}

/** The environment a test server runs with, before `env` overrides. */
export function testEnv(databaseUrl: string, gatewayUrl: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    AIGATEWAY_URL: gatewayUrl,
    AIGATEWAY_TIMEOUT_MS: '2000',
    AIGATEWAY_RETRY_BASE_MS: '5',
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    VOUCHER_SIGNING_KEY: TEST_VOUCHER_KEY,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  };
}

/** A real server on a fresh database and a fresh gateway simulator, both over loopback HTTP. */
export async function startTestApp(options: TestAppOptions): Promise<TestApp> {
  const ownsDatabase = !options.databaseUrl;
  const databaseUrl = options.databaseUrl ?? uniqueDatabaseUrl(options.label);
  const ownsSimulator = !options.simulator;
  const simulator = options.simulator ?? new GatewaySimulator();
  const gatewayUrl = ownsSimulator ? await simulator.start(0) : simulator.url;
  // What this call set up itself, released whatever fails: a simulator left listening keeps the test
  // worker alive, and a database left behind fills the shared PostgreSQL.
  const release = async () => {
    try {
      if (ownsSimulator) await simulator.stop();
    } finally {
      if (ownsDatabase) await dropDatabase(databaseUrl);
    }
  };

  let config: AppConfig;
  let app: RunningApp;
  try {
    config = loadConfig({ ...testEnv(databaseUrl, gatewayUrl), ...options.env });
    config.port = 0;
    app = await startApp({
      config,
      logger: options.logger ?? silentLogger(),
      clock: options.clock,
      schedule: options.schedule ?? false,
    });
  } catch (error) {
    await release().catch(() => undefined);
    throw error;
  }
  const baseUrl = app.url.replace(/\/graphql$/, '');
  const secret = config.auth.jwtSecret ?? TEST_JWT_SECRET;
  const token = (mint: MintOptions) => mintToken(secret, mint);

  return {
    app,
    config,
    simulator,
    baseUrl,
    databaseUrl,
    token,
    adminToken: await token({ userId: TEST_ADMIN_ID, admin: true }),
    userToken: await token({ userId: TEST_USER_ID }),
    async gql(query, variables, requestOptions = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...requestOptions.headers };
      if (requestOptions.token) headers.authorization = `Bearer ${requestOptions.token}`;
      const response = await fetch(`${baseUrl}/graphql`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
      });
      const text = await response.text();
      let body: { data?: unknown; errors?: GraphqlResponse['errors'] };
      try {
        body = JSON.parse(text);
      } catch {
        throw new Error(`not JSON (HTTP ${response.status}): ${text.slice(0, 200)}`);
      }
      return {
        status: response.status,
        data: (body.data ?? null) as never,
        errors: body.errors,
        headers: response.headers,
      };
    },
    async stop() {
      try {
        await app.stop();
      } finally {
        await release();
      }
    },
  };
}

/** The `extensions.code` of the first error, for terse assertions. */
export function errorCode(response: Pick<GraphqlResponse<unknown>, 'errors'>): unknown {
  return response.errors?.[0]?.extensions?.code;
}
