import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AppConfig } from './config.js';
import { startEmbeddedPostgres } from './db/embedded-postgres.js';
import type { Logger } from './logger.js';
import { startHrSimulatorForEmbedded } from './modules/employees/hr-simulator.js';
import { GatewaySimulator } from './modules/gateway/simulator/gateway-simulator.js';
import type { StateSnapshot } from './modules/gateway/simulator/simulator-state.js';

/**
 * Embedded mode: what `npm start` does when nothing is configured. The parts that are not
 * configured are provided here — a PostgreSQL under DATA_DIR, the gateway simulator on a free
 * loopback port, and secrets kept in DATA_DIR/secrets.json (so tokens and vouchers survive a
 * restart) — and the config is completed with them. The simulator's counters are saved to
 * DATA_DIR/gateway-simulator.json at a clean stop and restored at the next start.
 */

export const EMBEDDED_DATABASE_NAME = 'quota_manager';

/** The embedded gateway simulator's counters and permissions, saved at a clean stop (DATA_DIR). */
const SIMULATOR_STATE_FILE = 'gateway-simulator.json';

async function restoreSimulator(simulator: GatewaySimulator, file: string, logger: Logger): Promise<void> {
  if (!existsSync(file)) return;
  try {
    simulator.restore(JSON.parse(await readFile(file, 'utf8')) as StateSnapshot);
  } catch (error) {
    // A damaged file costs the demo its gateway counters, not the start (quota sync can set totals
    // again); it is kept aside, not overwritten by the next save.
    await rename(file, `${file}.damaged`).catch(() => undefined);
    logger.warn(
      { err: error, file, keptAs: `${file}.damaged` },
      'could not restore the gateway simulator; it starts empty',
    );
  }
}

async function saveSimulator(simulator: GatewaySimulator, file: string): Promise<void> {
  // Written aside and renamed, so a stop interrupted mid-write never leaves half a file.
  await writeFile(`${file}.tmp`, JSON.stringify(simulator.snapshot()));
  await rename(`${file}.tmp`, file);
}

export interface EmbeddedRuntime {
  config: AppConfig;
  /** What was started here, for the banner. */
  started: { database: boolean; gatewaySimulator: boolean; hrSimulator: boolean; generatedSecrets: boolean };
  stop(): Promise<void>;
}

interface StoredSecrets {
  jwtSecret: string;
  voucherSigningKey: string;
}

/**
 * DATA_DIR/runtime.json tells tools (`npm run seed`) where a running server's database is, and its
 * embedded gateway simulator, so what they grant reaches the gateway the server reads.
 */
interface RuntimeFile {
  pid: number;
  databaseUrl: string;
  gatewayUrl: string | null;
}

export interface RunningServer {
  databaseUrl: string;
  /** The running server's embedded gateway simulator; null when it uses a configured gateway. */
  gatewayUrl: string | null;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** The secrets embedded mode generated under DATA_DIR, or null when it never did. */
export async function loadSecrets(dataDir: string): Promise<StoredSecrets | null> {
  const file = path.join(dataDir, 'secrets.json');
  return existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as StoredSecrets) : null;
}

export async function loadOrCreateSecrets(dataDir: string): Promise<{ secrets: StoredSecrets; created: boolean }> {
  const stored = await loadSecrets(dataDir);
  if (stored) return { secrets: stored, created: false };
  await mkdir(dataDir, { recursive: true });
  const secrets: StoredSecrets = {
    jwtSecret: randomBytes(32).toString('base64url'),
    voucherSigningKey: randomBytes(32).toString('base64url'),
  };
  await writeFile(path.join(dataDir, 'secrets.json'), JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return { secrets, created: true };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The server running on this data directory, if one runs. */
export async function runningServer(dataDir: string): Promise<RunningServer | null> {
  const file = path.join(dataDir, 'runtime.json');
  if (!existsSync(file)) return null;
  try {
    const runtime = JSON.parse(await readFile(file, 'utf8')) as RuntimeFile;
    if (!processAlive(runtime.pid)) return null;
    return { databaseUrl: runtime.databaseUrl, gatewayUrl: runtime.gatewayUrl ?? null };
  } catch {
    return null;
  }
}

export interface EmbeddedOptions {
  /**
   * Start the gateway simulator when AIGATEWAY_URL is unset. The server does; so does `npm run seed`
   * with no server running, so that its grants land in the simulator state the next start restores.
   */
  gatewaySimulator: boolean;
  /** Start the HR simulator when HR sync is on without HR URLs (the server only). */
  hrSimulator: boolean;
  /** Write DATA_DIR/runtime.json so tools can find the database. */
  announce: boolean;
}

export async function prepareEmbeddedRuntime(
  base: AppConfig,
  logger: Logger,
  options: EmbeddedOptions = { gatewaySimulator: true, hrSimulator: true, announce: true },
): Promise<EmbeddedRuntime> {
  const stops: (() => Promise<void>)[] = [];
  const config: AppConfig = structuredClone(base);
  const started = { database: false, gatewaySimulator: false, hrSimulator: false, generatedSecrets: false };
  const dataDir = path.resolve(config.dataDir);

  try {
    if (config.embeddedDatabase) {
      const database = await startEmbeddedPostgres({ root: dataDir, persistent: true, logger });
      stops.push(() => database.stop());
      config.databaseUrl = withDatabase(database.url, EMBEDDED_DATABASE_NAME);
      started.database = true;

      const needsSecret = config.auth.verify && !config.auth.jwtSecret && !config.auth.jwksUrl;
      if (needsSecret || !config.voucherSigningKey) {
        const { secrets, created } = await loadOrCreateSecrets(dataDir);
        if (needsSecret) config.auth.jwtSecret = secrets.jwtSecret;
        config.voucherSigningKey ??= secrets.voucherSigningKey;
        started.generatedSecrets = created;
      }
    }

    if (config.gateway.url === null && options.gatewaySimulator) {
      const simulator = new GatewaySimulator({
        adminPath: config.gateway.adminPath,
        authHeader: config.gateway.authHeader,
        authValue: config.gateway.authValue,
      });
      // Beside the embedded database its counters are the other half of the ledger's state (the
      // invariant total = Σ VALID), so they are kept with it across restarts.
      const stateFile = config.embeddedDatabase ? path.join(dataDir, SIMULATOR_STATE_FILE) : null;
      if (stateFile) await restoreSimulator(simulator, stateFile, logger);
      // Saved after it stopped (stops run in reverse): no call can change it after the snapshot.
      if (stateFile) stops.push(() => saveSimulator(simulator, stateFile));
      config.gateway.url = await simulator.start(0, '127.0.0.1');
      stops.push(() => simulator.stop());
      started.gatewaySimulator = true;
    }

    // HR sync switched on without an HR system, in the embedded demo set-up only: serve the demo
    // organisation, encrypted like HR does. With a real database main.ts refuses to start instead, so
    // a forgotten HR_EMPLOYEES_URL never mirrors (and pushes permissions for) demo employees.
    if (config.embeddedDatabase && config.hr.enabled && config.hr.employeesUrl === null && options.hrSimulator) {
      const hr = await startHrSimulatorForEmbedded(config);
      Object.assign(config.hr, {
        employeesUrl: hr.employeesUrl,
        departmentsUrl: hr.departmentsUrl,
        employeesKey: hr.employeesKey,
        departmentsKey: hr.departmentsKey,
      });
      stops.push(() => hr.stop());
      started.hrSimulator = true;
    }

    // Last, once every URL is known; removed first at stop.
    if (config.embeddedDatabase && options.announce) {
      const runtimeFile = path.join(dataDir, 'runtime.json');
      const runtime: RuntimeFile = {
        pid: process.pid,
        databaseUrl: config.databaseUrl!,
        gatewayUrl: started.gatewaySimulator ? config.gateway.url : null,
      };
      await writeFile(runtimeFile, JSON.stringify(runtime));
      stops.push(() => rm(runtimeFile, { force: true }));
    }
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw error;
  }

  return {
    config,
    started,
    async stop() {
      // Last started, first stopped: the runtime file goes first, the database last.
      for (const stop of [...stops].reverse()) {
        await stop().catch((error) => logger.warn({ err: error }, 'failed to stop an embedded part'));
      }
    },
  };
}
