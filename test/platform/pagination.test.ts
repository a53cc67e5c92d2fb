import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import {
  DEFAULT_PAGE_SIZE,
  decodeCursor,
  encodeCursor,
  MAX_PAGE_SIZE,
  type PageArgs,
  pageWindow,
  paginate,
  paginateArray,
} from '../../src/graphql/pagination.js';

/** The one paging helper (contract conventions: first default 20, max 100, opaque after, offset). */

const LETTERS = Array.from({ length: 26 }, (_, index) => String.fromCharCode(97 + index));

function refusal(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.BAD_USER_INPUT);
    return error as DomainError;
  }
  throw new Error('expected BAD_USER_INPUT');
}

const base64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

describe('first', () => {
  it('defaults to 20 and allows 1..100', () => {
    expect(DEFAULT_PAGE_SIZE).toBe(20);
    expect(MAX_PAGE_SIZE).toBe(100);
    expect(pageWindow({})).toEqual({ limit: 20, offset: 0 });
    expect(pageWindow({ first: null })).toEqual({ limit: 20, offset: 0 });
    expect(pageWindow({ first: 1 })).toEqual({ limit: 1, offset: 0 });
    expect(pageWindow({ first: 100 })).toEqual({ limit: 100, offset: 0 });
  });

  it.each([0, 101, -1, 1.5, Number.NaN])('refuses first = %s', (first) => {
    expect(refusal(() => pageWindow({ first })).message).toMatch(/first must be between 1 and 100/);
  });
});

describe('offset', () => {
  it('skips that many items', () => {
    expect(pageWindow({ first: 5, offset: 10 })).toEqual({ limit: 5, offset: 10 });
    expect(pageWindow({ offset: 0 })).toEqual({ limit: 20, offset: 0 });
  });

  it.each([-1, -100, 2.5])('refuses offset = %s', (offset) => {
    expect(refusal(() => pageWindow({ offset })).message).toMatch(/offset must be 0 or more/);
  });

  it('is ignored when after is given', () => {
    expect(pageWindow({ first: 5, after: encodeCursor(2), offset: 20 })).toEqual({ limit: 5, offset: 3 });
  });
});

describe('cursors', () => {
  it('round trip, and after starts right behind the cursor', () => {
    for (const position of [0, 1, 19, 12345, 999_999_999]) {
      const cursor = encodeCursor(position);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(cursor)).toBe(position);
      expect(pageWindow({ after: cursor }).offset).toBe(position + 1);
    }
  });

  it.each([
    ['garbage', 'garbage!'],
    ['empty', ''],
    ['non-base64url characters', 'djE6MQ=='],
    ['plain base64 with + and /', 'ab+/cd'],
    ['the wrong prefix', base64url('v2:5')],
    ['no prefix', base64url('5')],
    ['a negative position', base64url('v1:-1')],
    ['a non-number position', base64url('v1:five')],
    ['an exponent', base64url('v1:1e3')],
    ['a fractional position', base64url('v1:1.5')],
    ['a huge position', base64url('v1:99999999999')],
    ['a huge cursor', 'A'.repeat(10_000)],
    ['white space', ` ${encodeCursor(1)}`],
  ])('refuses a cursor with %s', (_what, cursor) => {
    expect(refusal(() => pageWindow({ after: cursor })).message).toBe('after is not a valid cursor');
  });
});

describe('paginate', () => {
  async function page(args: PageArgs, all: string[] = LETTERS) {
    return paginate(args, async ({ limit, offset }) => ({
      items: all.slice(offset, offset + limit),
      totalCount: all.length,
    }));
  }

  it('gives the first page with cursors, counts and page info', async () => {
    const first = await page({ first: 10 });
    expect(first.nodes).toEqual(LETTERS.slice(0, 10));
    expect(first.edges.map((edge) => edge.node)).toEqual(first.nodes);
    expect(first.totalCount).toBe(26);
    expect(first.pageInfo).toEqual({
      hasNextPage: true,
      hasPreviousPage: false,
      startCursor: first.edges[0].cursor,
      endCursor: first.edges[9].cursor,
    });
  });

  it('walks every page through endCursor without gaps or repeats; the last page has no next', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const current = await page({ first: 10, after });
      seen.push(...current.nodes);
      pages += 1;
      if (!current.pageInfo.hasNextPage) {
        expect(current.nodes).toEqual(['u', 'v', 'w', 'x', 'y', 'z']);
        expect(current.pageInfo.hasPreviousPage).toBe(true);
        break;
      }
      after = current.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(LETTERS);
  });

  it('a page that ends exactly at the end has no next page', async () => {
    const exact = await page({ first: 13, offset: 13 });
    expect(exact.nodes).toHaveLength(13);
    expect(exact.pageInfo.hasNextPage).toBe(false);
    expect(exact.pageInfo.hasPreviousPage).toBe(true);
  });

  it('the cursor of an item is its position, whichever way the page was reached', async () => {
    const byOffset = await page({ first: 5, offset: 7 });
    const byCursor = await page({ first: 5, after: encodeCursor(6) });
    expect(byCursor.edges).toEqual(byOffset.edges);
    expect(decodeCursor(byOffset.edges[0].cursor)).toBe(7);
  });

  it('an empty list gives an empty page with null cursors', async () => {
    const empty = await page({}, []);
    expect(empty).toEqual({
      edges: [],
      nodes: [],
      totalCount: 0,
      pageInfo: { hasNextPage: false, hasPreviousPage: false, startCursor: null, endCursor: null },
    });
  });

  it('past the end gives an empty page that still knows the total', async () => {
    const past = await page({ first: 10, offset: 100 });
    expect(past.nodes).toEqual([]);
    expect(past.totalCount).toBe(26);
    expect(past.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true, startCursor: null });
  });

  it('never calls fetch for bad arguments', async () => {
    let calls = 0;
    const fetch = async () => {
      calls += 1;
      return { items: [], totalCount: 0 };
    };
    await expect(paginate({ first: 0 }, fetch)).rejects.toBeInstanceOf(DomainError);
    await expect(paginate({ after: 'garbage!' }, fetch)).rejects.toBeInstanceOf(DomainError);
    expect(calls).toBe(0);
  });

  it('paginateArray pages an in-memory list the same way', async () => {
    const fromArray = paginateArray({ first: 4, offset: 22 }, LETTERS);
    expect(fromArray).toEqual(await page({ first: 4, offset: 22 }));
    expect(fromArray.pageInfo.hasNextPage).toBe(false);
  });
});
