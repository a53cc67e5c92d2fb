import type { MikroORM } from '@mikro-orm/postgresql';
import { pendingMigrations } from '../../db/orm.js';
import type { Logger } from '../../logger.js';
import type { GatewayClient } from '../gateway/gateway.client.js';

export interface HealthReport {
  status: 'ok' | 'degraded';
  database: boolean;
  gateway: boolean;
  version: string;
}

const DATABASE_CHECK_TIMEOUT_MS = 2_000;
const GATEWAY_PROBE_INTERVAL_MS = 30_000;

/** GET /ready's answer: 200 only when ready. */
export interface Readiness {
  ready: boolean;
  database: boolean;
  pendingMigrations: string[];
  /** true once SIGTERM/SIGINT started the graceful shutdown. */
  shuttingDown: boolean;
}

/** The driver connection the database check uses (node-postgres' Client, with the pool's settings). */
interface ProbeConnection {
  query(text: string): Promise<unknown>;
  connect(): Promise<void>;
  end(): Promise<void>;
  on(event: 'error' | 'end', listener: (error?: unknown) => void): void;
  /** Set when the connection failed or the server ended it: it must not be used again. */
  unusable?: unknown;
}

/**
 * Health for `GET /health` and the `health` query: "ok" when the database answers. The gateway is
 * reported as the outcome of the last call or probe (a background probe runs every 30 s), so a
 * health check never waits on the gateway's 30 s timeout.
 */
export class HealthService {
  private draining = false;
  private probeTimer: NodeJS.Timeout | null = null;
  /**
   * A connection of the check's own, outside the pool: when the gateway hangs, ledger transactions
   * waiting on it can hold every pooled connection for minutes, and a check that queued behind them
   * reported the database down — and a load balancer would then take every instance out.
   */
  private probeConnection: Promise<ProbeConnection> | null = null;
  /** The check under way: checks that arrive meanwhile (load balancers probe often) share it. */
  private checking: Promise<boolean> | null = null;
  /**
   * Set once every migration this code knows is applied, which stays true while the process runs: from
   * then on /ready, which load balancers poll, costs one ping on the check's own connection — no pool
   * connection (the gateway may be holding them all) and no migration table read.
   */
  private migrationsApplied = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly gateway: GatewayClient,
    private readonly version: string,
    private readonly logger: Logger,
  ) {}

  startGatewayProbe(): void {
    const probe = () => {
      this.gateway.probe().catch((error) => this.logger.debug({ err: error }, 'gateway probe failed'));
    };
    probe();
    this.probeTimer = setInterval(probe, GATEWAY_PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    await this.dropProbeConnection();
  }

  async report(): Promise<HealthReport> {
    const database = await this.databaseAnswers();
    return {
      status: database ? 'ok' : 'degraded',
      database,
      gateway: this.gateway.lastProbeOk,
      version: this.version,
    };
  }

  /**
   * Shutdown has begun: /ready answers 503 from now on, so a load balancer stops sending new requests
   * while running jobs reach a safe point and requests in flight finish.
   */
  startDraining(): void {
    this.draining = true;
  }

  /** Readiness: not shutting down, the database answers and every migration is applied. */
  async ready(): Promise<Readiness> {
    if (this.draining) return { ready: false, database: true, pendingMigrations: [], shuttingDown: true };
    const database = await this.databaseAnswers();
    if (!database) return { ready: false, database, pendingMigrations: [], shuttingDown: false };
    if (this.migrationsApplied) return { ready: true, database, pendingMigrations: [], shuttingDown: false };
    try {
      const pending = await pendingMigrations(this.orm);
      this.migrationsApplied = pending.length === 0;
      return { ready: pending.length === 0, database, pendingMigrations: pending, shuttingDown: false };
    } catch {
      return { ready: false, database: false, pendingMigrations: [], shuttingDown: false };
    }
  }

  private databaseAnswers(): Promise<boolean> {
    this.checking ??= this.checkDatabase().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private async checkDatabase(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const query = this.pingOnOwnConnection();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('database check timed out')), DATABASE_CHECK_TIMEOUT_MS);
      });
      await Promise.race([query, timeout]);
      return true;
    } catch (error) {
      this.logger.warn({ err: error }, 'database health check failed');
      // Failed or timed out, the connection is in an unknown state: the next check opens a new one.
      // Not awaited: closing a connection to a server that does not answer can wait as long as it.
      void this.dropProbeConnection();
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  private async pingOnOwnConnection(): Promise<void> {
    // A connection the server ended since the last check (a restart, an idle timeout) is replaced
    // first, so that check does not report a database that is back as down.
    if (this.probeConnection && (await this.probeConnection.catch(() => null))?.unusable !== undefined) {
      await this.dropProbeConnection();
    }
    this.probeConnection ??= this.openProbeConnection();
    await (await this.probeConnection).query('select 1');
  }

  /**
   * A node-postgres client with the pool's settings and a connect timeout: a server that accepts the
   * connection and never answers must not leave one more socket open per check.
   */
  private openProbeConnection(): Promise<ProbeConnection> {
    const knex = this.knexClient() as unknown as {
      driver: { Client: new (settings: object) => ProbeConnection };
      connectionSettings: { password?: unknown };
    };
    const connection = new knex.driver.Client({
      ...knex.connectionSettings,
      // Not enumerable (kept out of logs), so the spread above leaves it behind.
      password: knex.connectionSettings.password,
      connectionTimeoutMillis: DATABASE_CHECK_TIMEOUT_MS,
    });
    connection.on('error', (error) => {
      connection.unusable = error ?? 'connection error';
    });
    connection.on('end', () => {
      connection.unusable ??= 'Connection ended unexpectedly';
    });
    return connection.connect().then(() => connection);
  }

  private async dropProbeConnection(): Promise<void> {
    const opening = this.probeConnection;
    this.probeConnection = null;
    if (!opening) return;
    await opening
      .then((connection) => connection.end())
      .catch((error: unknown) => this.logger.debug({ err: error }, 'could not close the health check connection'));
  }

  private knexClient() {
    return this.orm.em.getConnection().getKnex().client;
  }
}
