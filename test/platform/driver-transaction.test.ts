import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inDriverTransaction, numberPlaceholders } from '../../src/db/driver-transaction.js';
import type { EntityManager } from '../../src/db/orm.js';
import { isSqlState, SqlState, sqlStateOf } from '../../src/db/sql-state.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { failure } from '../support/failure.js';

/**
 * The ledger's transactions run their statements on a driver connection of the ORM's pool
 * (src/db/driver-transaction.ts). What they must keep: commit and rollback, values as parameters,
 * the pool's connections reused and broken ones dropped, and every statement visible to counters.
 */

let app: TestApp;
const em = (): EntityManager => app.app.services.orm.em.fork();

beforeAll(async () => {
  app = await startTestApp({ label: 'driver-transaction' });
  await em().execute('create table if not exists driver_probe (id int primary key, note text)');
});
afterAll(async () => {
  await app?.stop();
});

async function probeRows(): Promise<{ id: number; note: string | null }[]> {
  return em().execute('select id, note from driver_probe order by id');
}

describe('numberPlaceholders', () => {
  it('numbers ? in order, leaving quoted text alone', () => {
    expect(numberPlaceholders(`select ?, '?', "a?b", ?::jsonb where x = 'it''s ?'`, 2)).toBe(
      `select $1, '?', "a?b", $2::jsonb where x = 'it''s ?'`,
    );
  });

  it('refuses a statement whose placeholders do not match its values', () => {
    expect(() => numberPlaceholders('select ?, ?', 1)).toThrow(/2 placeholders but 1 values/);
    expect(() => numberPlaceholders('select 1', 1)).toThrow(/0 placeholders but 1 values/);
  });
});

describe('inDriverTransaction', () => {
  it('commits what work wrote, with values sent as parameters (no SQL injection through them)', async () => {
    const hostile = `x'); drop table driver_probe; --`;
    const returned = await inDriverTransaction(em(), async (sql) => {
      await sql.execute('insert into driver_probe (id, note) values (?, ?)', [1, hostile]);
      return sql.execute<{ note: string }>('select note from driver_probe where id = ?', [1]);
    });
    expect(returned).toEqual([{ note: hostile }]);
    expect(await probeRows()).toContainEqual({ id: 1, note: hostile });
  });

  it('rolls everything back when work throws, and rethrows the error as it was', async () => {
    const thrown = new Error('work failed');
    const error = await failure(
      inDriverTransaction(em(), async (sql) => {
        await sql.execute('insert into driver_probe (id, note) values (?, ?)', [2, 'never']);
        throw thrown;
      }),
    );
    expect(error).toBe(thrown);
    expect((await probeRows()).map((row) => row.id)).not.toContain(2);
  });

  it('rolls back on an SQL error and leaves the SQLSTATE on the error', async () => {
    const error = await failure(
      inDriverTransaction(em(), async (sql) => {
        await sql.execute('insert into driver_probe (id, note) values (?, ?)', [3, 'first']);
        await sql.execute('insert into driver_probe (id, note) values (?, ?)', [3, 'duplicate']);
      }),
    );
    expect(isSqlState(error, SqlState.uniqueViolation)).toBe(true);
    expect((await probeRows()).map((row) => row.id)).not.toContain(3);
  });

  it('reads one SQLSTATE from the driver and from the ORM alike, and none from other failures', async () => {
    await em().execute('insert into driver_probe (id, note) values (?, ?) on conflict do nothing', [30, 'once']);
    const insertTwice = 'insert into driver_probe (id, note) values (?, ?)';
    const fromDriver = await failure(inDriverTransaction(em(), (sql) => sql.execute(insertTwice, [30, 'again'])));
    const fromOrm = await failure(em().execute(insertTwice, [30, 'again']));
    expect(fromOrm).not.toBe(fromDriver);
    expect([sqlStateOf(fromDriver), sqlStateOf(fromOrm)]).toEqual(['23505', '23505']);
    // A broken connection or a bug has a code too, but not a five-character SQLSTATE.
    expect(sqlStateOf(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(sqlStateOf(new Error('plain'))).toBeUndefined();
    expect(sqlStateOf(null)).toBeUndefined();
    expect(isSqlState(Object.assign(new Error('x'), { code: 23505 }), SqlState.uniqueViolation)).toBe(false);
  });

  it('refuses array values instead of sending them differently from the ORM', async () => {
    const error = await failure(inDriverTransaction(em(), (sql) => sql.execute('select ?', [[1, 2]])));
    expect(String(error)).toMatch(/array values are not expanded/);
  });

  it('gives the connection back to the pool: many more transactions than connections all finish', async () => {
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, index) =>
        inDriverTransaction(
          em(),
          async (sql) => (await sql.execute<{ n: number }>('select ?::int as n', [index]))[0]!.n,
        ),
      ),
    );
    expect(results).toEqual(Array.from({ length: 60 }, (_, index) => index));
  });

  it('drops a connection that died mid-transaction; the next transactions get healthy ones', async () => {
    const error = await failure(
      inDriverTransaction(em(), (sql) => sql.execute('select pg_terminate_backend(pg_backend_pid())')),
    );
    expect(error).toBeDefined();
    // With the dead connection handed out again, one of these would fail.
    const pids = await Promise.all(
      Array.from({ length: 25 }, () =>
        inDriverTransaction(
          em(),
          async (sql) => (await sql.execute<{ pid: number }>('select pg_backend_pid() as pid'))[0]!.pid,
        ),
      ),
    );
    expect(pids.every((pid) => typeof pid === 'number')).toBe(true);
  });

  it('reports begin, each statement and commit on knex’s query event, under one transaction id', async () => {
    const knex = app.app.services.orm.em.getConnection().getKnex();
    const seen: { sql: string; __knexTxId?: string }[] = [];
    const listener = (query: { sql: string; __knexTxId?: string }) => seen.push(query);
    knex.on('query', listener);
    try {
      await inDriverTransaction(em(), (sql) => sql.execute('select ? as one', [1]));
    } finally {
      knex.off('query', listener);
    }
    expect(seen.map((query) => query.sql)).toEqual(['begin', 'select ? as one', 'commit']);
    expect(new Set(seen.map((query) => query.__knexTxId)).size).toBe(1);
  });
});

describe('inDriverTransaction with advisoryLockKey', () => {
  it('holds the advisory lock of the key (escaped, whatever it contains) until the end of the transaction', async () => {
    const key = `quote ' backslash \\ semicolon; -- end`;
    const heldByOthers = async () => {
      const rows = await em().execute<{ free: boolean }[]>(
        'select pg_try_advisory_xact_lock(hashtextextended(?, 0)) as free',
        [key],
      );
      return !rows[0]!.free;
    };
    const duringTransaction = await inDriverTransaction(em(), () => heldByOthers(), { advisoryLockKey: key });
    expect(duringTransaction).toBe(true);
    expect(await heldByOthers()).toBe(false);
  });
});

describe('Ledger.withUserLedger', () => {
  it('refuses to run inside an ORM transaction (it would run on a second connection)', async () => {
    const error = await failure(
      em().transactional((transaction) =>
        app.app.services.ledger.withUserLedger(transaction, 'driver-nested', (ledger) => ledger.validTotal()),
      ),
    );
    expect(String(error)).toMatch(/starts its own transaction/);
  });
});
