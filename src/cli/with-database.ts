import { existsSync } from 'node:fs';
import path from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { AppConfig } from '../config.js';
import { loadConfig } from '../config.js';
import { migrate, openMainOrm } from '../db/orm.js';
import { loadSecrets, prepareEmbeddedRuntime, runningServer } from '../embedded.js';
import { createLogger } from '../logger.js';

/**
 * Runs a tool against the server's database: DATABASE_URL when set; otherwise the embedded
 * database of a running `npm start` (found through DATA_DIR/runtime.json) and its gateway simulator,
 * or the embedded cluster and simulator started here for the duration of the tool (the simulator's
 * counters are saved for the next `npm start`). Migrations are applied first.
 */
export async function withDatabase<T>(work: (orm: MikroORM, config: AppConfig) => Promise<T>): Promise<T> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const baseConfig = loadConfig(process.env);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
  let config = baseConfig;
  let stopRuntime = async () => {};
  if (baseConfig.embeddedDatabase) {
    const dataDir = path.resolve(baseConfig.dataDir);
    const running = await runningServer(dataDir);
    if (running) {
      const gateway = { ...baseConfig.gateway, url: baseConfig.gateway.url ?? running.gatewayUrl };
      // The server signs vouchers with the embedded key unless one is configured; so do the tools. Read,
      // never created here: a server with a configured key has none, and a new one would not match.
      const voucherSigningKey = baseConfig.voucherSigningKey ?? (await loadSecrets(dataDir))?.voucherSigningKey ?? null;
      config = { ...baseConfig, databaseUrl: running.databaseUrl, gateway, voucherSigningKey };
    } else {
      const runtime = await prepareEmbeddedRuntime(baseConfig, logger, {
        gatewaySimulator: true,
        hrSimulator: false,
        announce: false,
      });
      config = runtime.config;
      stopRuntime = () => runtime.stop();
    }
  }
  try {
    const orm = await openMainOrm(config.databaseUrl!, logger);
    try {
      await migrate(orm);
      return await work(orm, config);
    } finally {
      await orm.close(true);
    }
  } finally {
    await stopRuntime();
  }
}
