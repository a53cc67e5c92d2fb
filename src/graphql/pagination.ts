import type { ClassType } from 'type-graphql';
import { ArgsType, Field, Int, ObjectType } from 'type-graphql';
import { badInput } from '../errors.js';

/**
 * The one Connection helper (contract: `first` default 20, max 100; opaque `after`; `offset` for
 * page jumps, ignored when `after` is given; `totalCount`; `pageInfo`). Every list uses it.
 *
 * Cursors are opaque to clients: today they carry the position in the ordered list, prefixed with a
 * version, so they can change to keyset cursors later without breaking anyone.
 */

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
const CURSOR_PREFIX = 'v1:';

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
  limit: number;
  offset: number;
}

export function encodeCursor(position: number): string {
  return Buffer.from(`${CURSOR_PREFIX}${position}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): number {
  if (cursor.length > 100 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw badInput('after is not a valid cursor');
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(CURSOR_PREFIX)) throw badInput('after is not a valid cursor');
  const position = text.slice(CURSOR_PREFIX.length);
  if (!/^\d{1,9}$/.test(position)) throw badInput('after is not a valid cursor');
  return Number(position);
}

export function pageWindow(args: PageArgs): PageWindow {
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
    throw badInput(`first must be between 1 and ${MAX_PAGE_SIZE}, got ${first}`);
  }
  if (args.offset !== undefined && args.offset !== null && (!Number.isInteger(args.offset) || args.offset < 0)) {
    throw badInput(`offset must be 0 or more, got ${args.offset}`);
  }
  if (args.after !== undefined && args.after !== null) {
    return { limit: first, offset: decodeCursor(args.after) + 1 };
  }
  return { limit: first, offset: args.offset ?? 0 };
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  nodes: T[];
  pageInfo: PageInfo;
  totalCount: number;
}

/**
 * Runs one page query. `fetch` gets the window (it may ask for limit + 1 rows to learn whether more
 * follow, but totalCount is needed anyway, so a count query is the simple, exact way).
 */
export async function paginate<T>(
  args: PageArgs,
  fetch: (window: PageWindow) => Promise<{ items: T[]; totalCount: number }>,
): Promise<Connection<T>> {
  const window = pageWindow(args);
  const { items, totalCount } = await fetch(window);
  return toConnection(items, totalCount, window);
}

export function toConnection<T>(items: T[], totalCount: number, window: PageWindow): Connection<T> {
  const edges = items.map((node, index) => ({ cursor: encodeCursor(window.offset + index), node }));
  return {
    edges,
    nodes: items,
    totalCount,
    pageInfo: {
      hasNextPage: window.offset + items.length < totalCount,
      hasPreviousPage: window.offset > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** Pages an in-memory list (small lists that are computed, not queried). */
export function paginateArray<T>(args: PageArgs, all: T[]): Connection<T> {
  const window = pageWindow(args);
  return toConnection(all.slice(window.offset, window.offset + window.limit), all.length, window);
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
