import type { ClassType } from 'type-graphql';
import { ArgsType, Field, Int, ObjectType } from 'type-graphql';
import { badInput } from '../errors.js';
import { unstorableText } from './text-input.js';

/**
 * The one Connection helper (contract: `first` default 20, max 100; opaque `after`; `offset` for
 * page jumps, ignored when `after` is given; `totalCount`; `pageInfo`). Every list uses it.
 *
 * Cursors are opaque to clients. A list that names a key for its rows (`keyOf`: its id, or another
 * unique column its order follows) gets keyset cursors: the next page starts strictly after that row,
 * so rows added at the top meanwhile (a newer audit) or removed above it (a deleted strategy) neither
 * repeat nor skip rows. Position-only cursors (in-memory lists, and cursors handed out before) still
 * work as before: the page starts at that position.
 */

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
const POSITION_PREFIX = 'v1:';
const KEYSET_PREFIX = 'v2:';
/** Longest cursor accepted: a position and a key of a few hundred characters, base64url. */
const MAX_CURSOR_LENGTH = 600;
const MAX_KEY_LENGTH = 300;

@ObjectType()
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => Boolean)
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true })
  startCursor!: string | null;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  offset?: number | null;
}

/** Where a page starts and how long it is, after validation. */
export interface PageWindow {
  /** The page size asked for. */
  limit: number;
  /** Rows to fetch: one more than the page, so the helper can tell whether another page follows. */
  fetchLimit: number;
  /** Rows to skip: `offset`, or the position after a position-only cursor; 0 after a keyset cursor. */
  offset: number;
  /** A keyset cursor's key: the query returns only rows after that row in its order. */
  afterKey: string | null;
  /** Position of the page's first row in the whole list (its cursors, hasPreviousPage). */
  start: number;
}

export interface DecodedCursor {
  position: number;
  key: string | null;
}

export function encodeCursor(position: number, key?: string): string {
  const text = key === undefined ? `${POSITION_PREFIX}${position}` : `${KEYSET_PREFIX}${position}:${key}`;
  return Buffer.from(text, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): DecodedCursor {
  const invalid = () => badInput('after is not a valid cursor');
  if (cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const [prefix, rest] = [text.slice(0, 3), text.slice(3)];
  if (prefix === POSITION_PREFIX) {
    if (!/^\d{1,9}$/.test(rest)) throw invalid();
    return { position: Number(rest), key: null };
  }
  if (prefix !== KEYSET_PREFIX) throw invalid();
  const match = /^(\d{1,9}):([\s\S]+)$/.exec(rest);
  // A NUL would reach the database inside the key and fail there (the request check sees only base64).
  if (!match || match[2]!.length > MAX_KEY_LENGTH || unstorableText(match[2]!) !== null) throw invalid();
  return { position: Number(match[1]), key: match[2]! };
}

/** A keyset key that must be a row id (a positive whole number): anything else is a forged cursor. */
export function idAfterKey(window: PageWindow): string | null {
  if (window.afterKey === null) return null;
  if (!/^[1-9]\d{0,17}$/.test(window.afterKey)) throw badInput('after is not a valid cursor');
  return window.afterKey;
}

/**
 * The key of a row in a list ordered by (time, id): the time as whole microseconds since the epoch (the
 * database's precision, read in SQL) and the id. Carried in the cursor itself, so the next page needs
 * nothing of the cursor's row — which may have been deleted meanwhile.
 */
export function timeIdKey(epochMicroseconds: string, id: string): string {
  return `${epochMicroseconds}/${id}`;
}

/** The earliest timestamptz PostgreSQL stores (4714-11-24 BC, 00:00 UTC), in microseconds since 1970. */
const MIN_TIMESTAMP_MICROSECONDS = -210_866_803_200_000_000n;

/** A keyset key made by timeIdKey, or null without one; anything else is a forged cursor. */
export function timeIdAfterKey(window: PageWindow): { epochMicroseconds: string; id: string } | null {
  if (window.afterKey === null) return null;
  const match = /^(-?\d{1,18})\/([1-9]\d{0,17})$/.exec(window.afterKey);
  // Within PostgreSQL's timestamps (from 4714 BC): a time before them fails the query, not the cursor.
  if (!match || BigInt(match[1]!) < MIN_TIMESTAMP_MICROSECONDS) throw badInput('after is not a valid cursor');
  return { epochMicroseconds: match[1]!, id: match[2]! };
}

/**
 * A page query's WHERE: the list's filter (`where`: '' or 'where …', which its count query keeps) and,
 * after a keyset cursor, the condition that starts the page after the cursor's row.
 */
export function withKeyset(
  where: string,
  keyset: { sql: string; params: readonly unknown[] } | null,
): { sql: string; params: readonly unknown[] } {
  if (keyset === null) return { sql: where, params: [] };
  return { sql: where === '' ? `where ${keyset.sql}` : `${where} and ${keyset.sql}`, params: keyset.params };
}

export function pageWindow(args: PageArgs): PageWindow {
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw badInput(`first must be between 1 and ${MAX_PAGE_SIZE}, got ${first}`);
  }
  if (args.offset !== undefined && args.offset !== null && (!Number.isInteger(args.offset) || args.offset < 0)) {
    throw badInput(`offset must be 0 or more, got ${args.offset}`);
  }
  const window = { limit: first, fetchLimit: first + 1 };
  if (args.after !== undefined && args.after !== null) {
    const { position, key } = decodeCursor(args.after);
    return { ...window, offset: key === null ? position + 1 : 0, afterKey: key, start: position + 1 };
  }
  const offset = args.offset ?? 0;
  return { ...window, offset, afterKey: null, start: offset };
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  nodes: T[];
  pageInfo: PageInfo;
  totalCount: number;
}

/**
 * Runs one page query. `fetch` gets the window and returns up to `fetchLimit` rows from `offset`, or
 * after `afterKey` when the list has keys, plus the count of the whole list. `keyOf` names a row's key
 * (see above); without it the list's cursors carry positions only.
 */
export async function paginate<T>(
  args: PageArgs,
  fetch: (window: PageWindow) => Promise<{ items: T[]; totalCount: number }>,
  keyOf?: (item: T) => string,
): Promise<Connection<T>> {
  const window = pageWindow(args);
  const { items, totalCount } = await fetch(window);
  return toConnection(items, totalCount, window, keyOf);
}

/** The page from up to `fetchLimit` rows: the extra row only says that another page follows. */
export function toConnection<T>(
  rows: T[],
  totalCount: number,
  window: PageWindow,
  keyOf?: (item: T) => string,
): Connection<T> {
  const items = rows.slice(0, window.limit);
  const edges = items.map((node, index) => ({
    cursor: encodeCursor(window.start + index, keyOf?.(node)),
    node,
  }));
  return {
    edges,
    nodes: items,
    totalCount,
    pageInfo: {
      hasNextPage: rows.length > window.limit,
      hasPreviousPage: window.start > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** Pages an in-memory list (small lists that are computed, not queried): positions only. */
export function paginateArray<T>(args: PageArgs, all: T[]): Connection<T> {
  const window = pageWindow(args);
  return toConnection(all.slice(window.start, window.start + window.fetchLimit), all.length, window);
}

/**
 * Builds the `XEdge` and `XConnection` object types for a node type, with the contract's names.
 * Call it once per node type at module level: `export const StrategyPage = connectionTypes(Strategy, 'Strategy')`
 * and return `StrategyPage.Connection` from the resolver.
 */
export function connectionTypes<T extends object>(nodeType: ClassType<T>, name: string) {
  @ObjectType(`${name}Edge`)
  class Edge {
    @Field(() => String)
    cursor!: string;

    @Field(() => nodeType)
    node!: T;
  }

  @ObjectType(`${name}Connection`)
  class ConnectionObject {
    @Field(() => [Edge])
    edges!: Edge[];

    @Field(() => [nodeType])
    nodes!: T[];

    @Field(() => PageInfo)
    pageInfo!: PageInfo;

    @Field(() => Int)
    totalCount!: number;
  }

  return { Edge, Connection: ConnectionObject };
}

/** `first`, `after`, `offset` as type-graphql args, for every paged field: `@Args(() => ConnectionArgs)`. */
@ArgsType()
export class ConnectionArgs implements PageArgs {
  @Field(() => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE })
  first?: number | null;

  @Field(() => String, { nullable: true })
  after?: string | null;

  @Field(() => Int, { nullable: true })
  offset?: number | null;
}
