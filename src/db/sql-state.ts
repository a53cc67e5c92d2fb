/**
 * The PostgreSQL error codes (SQLSTATE) the code reacts to, by name, so a reader does not have to look
 * them up. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export const SqlState = {
  numericValueOutOfRange: '22003',
  foreignKeyViolation: '23503',
  uniqueViolation: '23505',
  duplicateDatabase: '42P04',
} as const;

type KnownSqlState = (typeof SqlState)[keyof typeof SqlState];

/**
 * The SQLSTATE of an error raised by PostgreSQL — from node-postgres directly (the ledger's driver
 * transactions) or wrapped by MikroORM, which keeps the driver's `code` — or undefined for anything
 * else (a reset connection, a timeout, a bug): those carry no five-character SQLSTATE.
 */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True when PostgreSQL refused the statement with `state`. */
export function isSqlState(error: unknown, state: KnownSqlState): boolean {
  return sqlStateOf(error) === state;
}
