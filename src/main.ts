import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { type RunningApp, startApp } from './app.js';
import { type AppConfig, ConfigError, loadConfig } from './config.js';
import { DataDirectoryInUseError } from './db/embedded-postgres.js';
import { type EmbeddedRuntime, prepareEmbeddedRuntime } from './embedded.js';
import { createLogger, type Logger } from './logger.js';
import { mintToken } from './modules/auth/token-verifier.js';
import { DEMO_USER_ID } from './modules/users/demo-directory.js';

/**
 * `npm start`: config → (embedded parts) → database and migrations → HTTP → (scheduler).
 * SIGINT/SIGTERM: stop accepting, drain, close the database, stop embedded parts, exit 0.
 */

function fail(message: string): never {
  process.stderr.write(`quota-manager: ${message}\n`);
  process.exit(1);
}

function readConfig(): AppConfig {
  if (existsSync('.env')) process.loadEnvFile('.env');
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) fail(`configuration error: ${error.message}`);
    throw error;
  }
}

/** A clear message instead of EADDRINUSE deep inside a stack trace. */
async function ensurePortFree(port: number, host: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE')
        fail(`port ${port} on ${host} is already in use (is another server running?); set PORT to use another`);
      if (error.code === 'EACCES') fail(`port ${port} on ${host} needs privileges; set PORT to a port above 1024`);
      fail(`cannot listen on ${host}:${port}: ${error.message}`);
    });
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

async function printBanner(app: RunningApp, runtime: EmbeddedRuntime): Promise<void> {
  const { config } = runtime;
  const lines = ['', `  Quota Manager is running: ${app.url}`, `  Health: ${app.url.replace(/\/graphql$/, '/health')}`];
  if (runtime.started.database) lines.push(`  Database: embedded PostgreSQL in ${config.dataDir}/pg`);
  if (runtime.started.gatewaySimulator) lines.push(`  AI gateway: built-in simulator at ${config.gateway.url}`);
  if (runtime.started.hrSimulator) lines.push(`  HR system: built-in simulator at ${config.hr.employeesUrl}`);
  // Tokens are printed only for the secret embedded mode generated, never for a configured one.
  if (runtime.started.database && config.auth.jwtSecret && !process.env.AUTH_JWT_SECRET) {
    const admin = await mintToken(config.auth.jwtSecret, {
      userId: 'demo-admin',
      admin: true,
      name: 'Demo Admin',
      ttl: '12h',
    });
    const user = await mintToken(config.auth.jwtSecret, { userId: DEMO_USER_ID, name: 'Demo User', ttl: '12h' });
    lines.push(
      '',
      '  Playground tokens (valid 12 h; put one in the Headers tab as {"authorization": "Bearer <token>"}):',
      `  admin: ${admin}`,
      `  user:  ${user}`,
      `  Or open ${app.url}?token=<token>. Mint more with: npm run token -- --user ID [--admin]`,
      '  Demo data: npm run seed',
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}

async function main(): Promise<void> {
  const baseConfig = readConfig();
  const logger: Logger = createLogger(baseConfig.logLevel);
  if (!baseConfig.auth.verify) {
    logger.warn(
      'AUTH_VERIFY=false: tokens are decoded, not verified. Only run like this behind a gateway that verifies them.',
    );
  }
  // The simulators serve the embedded demo set-up only. Beside a real database a forgotten (or
  // misspelt) URL would otherwise start one quietly: grants told to counters nothing keeps, lost at
  // the next restart, while the real gateway never hears of them.
  if (baseConfig.gateway.url === null && !baseConfig.embeddedDatabase) {
    fail(
      'configuration error: AIGATEWAY_URL is required with DATABASE_URL ' +
        '(the built-in gateway simulator serves only the embedded demo set-up)',
    );
  }
  if (baseConfig.hr.enabled && baseConfig.hr.employeesUrl === null && !baseConfig.embeddedDatabase) {
    fail(
      'configuration error: HR_SYNC_ENABLED=true needs HR_EMPLOYEES_URL and HR_DEPARTMENTS_URL with DATABASE_URL ' +
        '(the built-in HR simulator serves only the embedded demo set-up)',
    );
  }
  await ensurePortFree(baseConfig.port, baseConfig.host);

  // Signals are handled from here on: one during start-up (initdb, PostgreSQL starting, migrations)
  // lets the step in progress end, then stops what has started — killed mid-way, the process would
  // leave its embedded PostgreSQL running. A second signal exits at once.
  const started: { runtime: EmbeddedRuntime | null; app: RunningApp | null } = { runtime: null, app: null };
  let stopSignal: string | null = null;
  const shutdown = async () => {
    logger.info({ signal: stopSignal }, 'shutting down');
    try {
      await started.app?.stop();
      await started.runtime?.stop();
      logger.info('stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  const onSignal = (signal: string) => {
    if (stopSignal !== null) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopSignal = signal;
    if (started.app) void shutdown();
    else logger.info({ signal }, 'signal during start-up: stopping once the step in progress ends');
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  let runtime: EmbeddedRuntime;
  try {
    runtime = await prepareEmbeddedRuntime(baseConfig, logger);
  } catch (error) {
    if (error instanceof DataDirectoryInUseError) fail(error.message);
    throw error;
  }
  started.runtime = runtime;
  if (stopSignal !== null) return shutdown();

  let app: RunningApp;
  try {
    app = await startApp({ config: runtime.config, logger });
  } catch (error) {
    await runtime.stop();
    throw error;
  }
  started.app = app;
  logger.info({ url: app.url }, 'listening');
  if (stopSignal !== null) return shutdown();
  await printBanner(app, runtime);
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`quota-manager: failed to start: ${message}\n`);
  process.exit(1);
});
