import type { EntityManager } from './orm.js';
import { sqlStateOf } from './sql-state.js';

/**
 * Hand-written SQL, wherever it runs: `?` placeholders, rows back. An EntityManager (through `sqlOf`)
 * and a driver transaction (`inDriverTransaction`) both provide it, so code that only runs statements
 * (idempotency keys, voucher redemptions, the strategy executor's completion) works in either.
 */
export interface Sql {
  execute<Row extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

/** The EntityManager's `execute` (MikroORM formats the values into the text; one round trip). */
export function sqlOf(em: EntityManager): Sql {
  return {
    execute: <Row extends object>(sql: string, params: readonly unknown[] = []) => em.execute<Row[]>(sql, [...params]),
  };
}

/** The part of a node-postgres client we use. */
interface PgConnection {
  query(config: { text: string; values?: unknown[] }): Promise<{ rows: object[] }>;
  escapeLiteral(value: string): string;
  __knex__disposed?: unknown;
}

/** The part of knex's client we use: its pool, and its `query` event (what statement counters listen to). */
interface KnexClient {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
  emit(event: 'query', payload: { sql: string; bindings: readonly unknown[]; __knexTxId: string }): boolean;
}

let transactionSequence = 0;

export interface DriverTransactionOptions {
  /**
   * Takes `pg_advisory_xact_lock(hashtextextended(key, 0))` in the same round trip as `begin` (one
   * simple-protocol message with the key as an escaped literal): the lock is every ledger
   * transaction's first statement, so this saves a round trip each time.
   */
  advisoryLockKey?: string;
}

/**
 * Runs `work` in a transaction on one connection of the ORM's pool, statements going straight to the
 * driver (node-postgres) instead of through MikroORM and knex.
 *
 * Why: the ledger's transactions are short and hot (a transfer pair is eleven round trips), and the
 * ORM's per-statement path — formatting values into the text, knex's query builder and runner, the
 * transaction wrapper — measured about 0.1 ms of CPU per statement on these machines, more than the
 * statement itself costs the driver (bench/README.md, "Transfer: second pass"). Values are sent as
 * parameters (the extended protocol), so no value is ever formatted into SQL text.
 *
 * The connection comes from, and goes back to, the ORM's own pool (one pool size to configure, one
 * set of connection settings and type parsers). Each statement is reported on knex's `query` event,
 * like the ORM's own, so statement counts see it.
 */
export async function inDriverTransaction<T>(
  em: EntityManager,
  work: (sql: Sql) => Promise<T>,
  options: DriverTransactionOptions = {},
): Promise<T> {
  const client = em.getConnection().getKnex().client as unknown as KnexClient;
  const connection = await client.acquireConnection();
  const transactionId = `driver-${++transactionSequence}`;
  const run = async (text: string, params: readonly unknown[] = []) => {
    client.emit('query', { sql: text, bindings: params, __knexTxId: transactionId });
    const result = await connection.query({ text: numberPlaceholders(text, params.length), values: [...params] });
    return result.rows;
  };
  const sql: Sql = {
    execute: async <Row extends object>(text: string, params?: readonly unknown[]) => {
      // The ORM expands an array into a list; node-postgres would send an array literal instead.
      if (params?.some(Array.isArray)) throw new Error('array values are not expanded: pass JSON and unnest it');
      return (await run(text, params)) as Row[];
    },
  };
  // A connection that failed outside SQL (no SQLSTATE: reset, ended, timed out) is in an unknown
  // state: marked disposed, the pool destroys it instead of handing it out again.
  const disposeUnlessSqlError = (error: unknown) => {
    if (sqlStateOf(error) === undefined) connection.__knex__disposed ??= error;
  };
  const begin =
    options.advisoryLockKey === undefined
      ? 'begin'
      : `begin; select pg_advisory_xact_lock(hashtextextended(${connection.escapeLiteral(options.advisoryLockKey)}, 0))`;
  try {
    await run(begin).catch((error) => {
      disposeUnlessSqlError(error);
      throw error;
    });
    let result: T;
    try {
      result = await work(sql);
    } catch (error) {
      // Whatever work threw (SQL, gateway, domain), the transaction is undone; a failed rollback
      // means the connection is not fit for the next user.
      await run('rollback').catch((rollbackError) => {
        connection.__knex__disposed ??= rollbackError;
      });
      throw error;
    }
    await run('commit').catch((error) => {
      disposeUnlessSqlError(error);
      throw error;
    });
    return result;
  } finally {
    await client.releaseConnection(connection);
  }
}

/**
 * `?` → `$1`, `$2`, … outside quoted literals and identifiers (`'…'`, `"…"`), so the ledger's SQL
 * reads the same as the ORM's. The number of placeholders must match the values.
 */
export function numberPlaceholders(text: string, expected: number): string {
  let numbered = numberedTexts.get(text);
  if (numbered === undefined) {
    numbered = scanPlaceholders(text);
    // The ledger's statements are a few dozen fixed texts; the bound only guards against a caller
    // that builds texts with values in them.
    if (numberedTexts.size >= MAX_REMEMBERED_TEXTS) numberedTexts.clear();
    numberedTexts.set(text, numbered);
  }
  if (numbered.count !== expected) {
    throw new Error(`statement has ${numbered.count} placeholders but ${expected} values: ${text}`);
  }
  return numbered.text;
}

const MAX_REMEMBERED_TEXTS = 1_000;
const numberedTexts = new Map<string, { text: string; count: number }>();

function scanPlaceholders(text: string): { text: string; count: number } {
  let out = '';
  let count = 0;
  let quote: "'" | '"' | null = null;
  for (const char of text) {
    if (quote) {
      if (char === quote) quote = null;
      out += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      out += char;
    } else if (char === '?') {
      count += 1;
      out += `$${count}`;
    } else {
      out += char;
    }
  }
  return { text: out, count };
}
