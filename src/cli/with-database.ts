import { existsSync } from 'node:fs';
import path from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { AppConfig } from '../config.js';
import { loadConfig } from '../config.js';
import { migrate, openMainOrm } from '../db/orm.js';
import { prepareEmbeddedRuntime, runningServerDatabase } from '../embedded.js';
import { createLogger } from '../logger.js';

/**
 * Runs a tool against the server's database: DATABASE_URL when set; otherwise the embedded
 * database of a running `npm start` (found through DATA_DIR/runtime.json), or the embedded cluster
 * started here for the duration of the tool. Migrations are applied first.
 */
export async function withDatabase<T>(work: (orm: MikroORM, config: AppConfig) => Promise<T>): Promise<T> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const baseConfig = loadConfig(process.env);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
  let config = baseConfig;
  let stopRuntime = async () => {};
  if (baseConfig.embeddedDatabase) {
    const running = await runningServerDatabase(path.resolve(baseConfig.dataDir));
    if (running) {
      config = { ...baseConfig, databaseUrl: running };
    } else {
      const runtime = await prepareEmbeddedRuntime(baseConfig, logger, { gatewaySimulator: false, announce: false });
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
