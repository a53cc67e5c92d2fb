import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, SystemClock } from './clock.js';
import type { AppConfig } from './config.js';
import { migrate, openDirectoryOrm, openMainOrm } from './db/orm.js';
import { buildApiSchema } from './graphql/schema.js';
import type { Logger } from './logger.js';
import { TokenVerifier } from './modules/auth/token-verifier.js';
import { GatewayClient } from './modules/gateway/gateway.client.js';
import { GatewayAdminService } from './modules/gateway/gateway-admin.service.js';
import { HealthService } from './modules/health/health.service.js';
import { UserDirectory } from './modules/users/user-directory.js';
import { createHttpApp, type HttpApp } from './server.js';
import type { Services } from './services.js';

/**
 * The composition root: config in, a running server out. main.ts calls it after embedded mode has
 * filled in what was not configured; the tests call it with their own database and simulator.
 */

export interface StartAppOptions {
  config: AppConfig;
  logger: Logger;
  clock?: Clock;
  /** false = build everything but do not listen (tests that only need the services). */
  listen?: boolean;
}

export interface RunningApp {
  services: Services;
  http: HttpApp;
  /** http://host:port/graphql, once listening. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

export function packageVersion(): string {
  const file = new URL('../package.json', import.meta.url);
  // dist/src/app.js sits one level deeper than src/app.ts.
  for (const candidate of [file, new URL('../../package.json', import.meta.url)]) {
    try {
      const parsed = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'quota-manager' && parsed.version) return parsed.version;
    } catch {
      // try the next place
    }
  }
  return '0.0.0';
}

export async function startApp(options: StartAppOptions): Promise<RunningApp> {
  const { config, logger } = options;
  if (!config.databaseUrl) throw new Error('startApp needs a database URL (embedded mode fills it in)');
  if (!config.gateway.url) throw new Error('startApp needs a gateway URL (embedded mode fills it in)');
  const clock = options.clock ?? new SystemClock(config.timeZone);

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error) => logger.warn({ err: error }, 'close failed'));
  };

  try {
    const orm = await openMainOrm(config.databaseUrl, logger);
    closers.push(() => orm.close(true));
    const applied = await migrate(orm);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');

    let directoryOrm: MikroORM = orm;
    if (config.authDatabaseUrl) {
      directoryOrm = await openDirectoryOrm(config.authDatabaseUrl, logger);
      const opened = directoryOrm;
      closers.push(() => opened.close(true));
    }

    const gateway = new GatewayClient(
      {
        baseUrl: config.gateway.url,
        adminPath: config.gateway.adminPath,
        authHeader: config.gateway.authHeader,
        authValue: config.gateway.authValue,
        timeoutMs: config.gateway.timeoutMs,
        retries: config.gateway.retries,
        retryBaseDelayMs: config.gateway.retryBaseDelayMs,
      },
      logger.child({ component: 'gateway-client' }),
    );
    closers.push(async () => gateway.close());

    const health = new HealthService(orm, gateway, packageVersion(), logger);
    const services: Services = {
      config,
      clock,
      logger,
      orm,
      gateway,
      directory: new UserDirectory(directoryOrm, !config.authDatabaseUrl),
      health,
      gatewayAdmin: new GatewayAdminService(gateway, logger.child({ component: 'gateway-admin' })),
    };

    const verifier = new TokenVerifier(config.auth);
    const schema = await buildApiSchema();
    const http = await createHttpApp({ config, schema, services, verifier, logger });
    closers.push(() => http.close(config.shutdownTimeoutMs));

    let port = 0;
    if (options.listen !== false) {
      port = await http.listen(config.port, config.host);
      health.startGatewayProbe();
      closers.push(async () => health.stop());
    }
    // 127.0.0.1 and the wildcard addresses are all reachable as localhost, the name people type.
    const host = ['0.0.0.0', '::', '127.0.0.1'].includes(config.host) ? 'localhost' : config.host;

    let stopped = false;
    return {
      services,
      http,
      port,
      url: `http://${host}:${port}/graphql`,
      async stop() {
        if (stopped) return;
        stopped = true;
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
