import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import {
  DEFAULT_PAGE_SIZE,
  decodeCursor,
  encodeCursor,
  idAfterKey,
  MAX_PAGE_SIZE,
  type PageArgs,
  pageWindow,
  paginate,
  paginateArray,
  timeIdAfterKey,
  timeIdKey,
  withKeyset,
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
    const firstPage = { offset: 0, afterKey: null, start: 0 };
    expect(pageWindow({})).toEqual({ limit: 20, fetchLimit: 21, ...firstPage });
    expect(pageWindow({ first: null })).toEqual({ limit: 20, fetchLimit: 21, ...firstPage });
    expect(pageWindow({ first: 1 })).toEqual({ limit: 1, fetchLimit: 2, ...firstPage });
    expect(pageWindow({ first: 100 })).toEqual({ limit: 100, fetchLimit: 101, ...firstPage });
  });

  it.each([0, 101, -1, 1.5, Number.NaN])('refuses first = %s', (first) => {
    expect(refusal(() => pageWindow({ first })).message).toMatch(/first must be between 1 and 100/);
  });
});

describe('offset', () => {
  it('skips that many items', () => {
    expect(pageWindow({ first: 5, offset: 10 })).toMatchObject({ limit: 5, offset: 10, start: 10 });
    expect(pageWindow({ offset: 0 })).toMatchObject({ limit: 20, offset: 0, start: 0 });
  });

  it.each([-1, -100, 2.5])('refuses offset = %s', (offset) => {
    expect(refusal(() => pageWindow({ offset })).message).toMatch(/offset must be 0 or more/);
  });

  it('is ignored when after is given', () => {
    expect(pageWindow({ first: 5, after: encodeCursor(2), offset: 20 })).toMatchObject({ limit: 5, offset: 3 });
    expect(pageWindow({ first: 5, after: encodeCursor(2, '41'), offset: 20 })).toMatchObject({
      offset: 0,
      afterKey: '41',
      start: 3,
    });
  });
});

describe('cursors', () => {
  it('round trip, and after starts right behind the cursor', () => {
    for (const position of [0, 1, 19, 12345, 999_999_999]) {
      const cursor = encodeCursor(position);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(cursor)).toEqual({ position, key: null });
      expect(pageWindow({ after: cursor }).offset).toBe(position + 1);
    }
  });

  it('keyset cursors round trip their position and key (which may hold ":"), and skip nothing', () => {
    for (const key of ['1', '987654321', 'E-001:a', '研发']) {
      const cursor = encodeCursor(7, key);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(cursor)).toEqual({ position: 7, key });
      expect(pageWindow({ after: cursor })).toMatchObject({ offset: 0, afterKey: key, start: 8 });
    }
  });

  it('timeIdAfterKey reads back what timeIdKey wrote and refuses anything else', () => {
    const window = pageWindow({ after: encodeCursor(4, timeIdKey('1795046400123456', '77')) });
    expect(timeIdAfterKey(window)).toEqual({ epochMicroseconds: '1795046400123456', id: '77' });
    expect(timeIdAfterKey(pageWindow({}))).toBeNull();
    // Before PostgreSQL's first timestamp (4714-11-24 BC) the database, not the cursor, would fail.
    const beforeTime = '-210866803200000001/1';
    for (const forged of ['77', '1.5/77', '123/0', '123/abc', '123/77/1', `${'9'.repeat(19)}/1`, beforeTime]) {
      expect(refusal(() => timeIdAfterKey(pageWindow({ after: encodeCursor(4, forged) }))).message).toBe(
        'after is not a valid cursor',
      );
    }
    for (const edge of ['-210866803200000000', '-1', '0', '9'.repeat(18)]) {
      const after = encodeCursor(4, timeIdKey(edge, '5'));
      expect(timeIdAfterKey(pageWindow({ after }))).toEqual({ epochMicroseconds: edge, id: '5' });
    }
  });

  it('refuses a keyset key PostgreSQL cannot take as text (a NUL), which the request check cannot see in base64', () => {
    for (const key of ['\u0000', 'E-001\u0000x']) {
      expect(refusal(() => decodeCursor(encodeCursor(2, key))).message).toBe('after is not a valid cursor');
    }
  });

  it('withKeyset adds the keyset to a list filter, or starts the WHERE itself', () => {
    expect(withKeyset('', null)).toEqual({ sql: '', params: [] });
    expect(withKeyset('where a = ?', null)).toEqual({ sql: 'where a = ?', params: [] });
    expect(withKeyset('', { sql: 'id < ?', params: ['9'] })).toEqual({ sql: 'where id < ?', params: ['9'] });
    expect(withKeyset('where a = ?', { sql: 'id < ?', params: ['9'] })).toEqual({
      sql: 'where a = ? and id < ?',
      params: ['9'],
    });
  });

  it('idAfterKey takes only a row id from a keyset cursor', () => {
    expect(idAfterKey(pageWindow({ after: encodeCursor(3, '42') }))).toBe('42');
    expect(idAfterKey(pageWindow({ after: encodeCursor(3) }))).toBeNull();
    expect(idAfterKey(pageWindow({}))).toBeNull();
    for (const forged of ['0', '-1', '1.5', '1e3', 'abc', '1 or 1=1', '9'.repeat(19)]) {
      expect(refusal(() => idAfterKey(pageWindow({ after: encodeCursor(3, forged) }))).message).toBe(
        'after is not a valid cursor',
      );
    }
  });

  it.each([
    ['garbage', 'garbage!'],
    ['empty', ''],
    ['non-base64url characters', 'djE6MQ=='],
    ['plain base64 with + and /', 'ab+/cd'],
    ['the wrong prefix', base64url('v3:5')],
    ['a keyset cursor without its key', base64url('v2:5:')],
    ['a keyset cursor without a position', base64url('v2::42')],
    ['a keyset cursor with an over-long key', base64url(`v2:5:${'k'.repeat(301)}`)],
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
    return paginate(args, async ({ fetchLimit, offset }) => ({
      items: all.slice(offset, offset + fetchLimit),
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
    expect(decodeCursor(byOffset.edges[0].cursor)).toEqual({ position: 7, key: null });
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

  it('with keys, the next page starts after the cursor row even when rows were added above it', async () => {
    const list = [...LETTERS];
    const keyed = (args: PageArgs) =>
      paginate(
        args,
        async ({ fetchLimit, offset, afterKey }) => {
          const from = afterKey === null ? offset : list.indexOf(afterKey) + 1;
          return { items: list.slice(from, from + fetchLimit), totalCount: list.length };
        },
        (letter) => letter,
      );
    const first = await keyed({ first: 10 });
    list.unshift('new-1', 'new-2'); // newest first: two rows arrive at the top meanwhile
    const second = await keyed({ first: 10, after: first.pageInfo.endCursor });
    expect(second.nodes).toEqual(LETTERS.slice(10, 20));
    expect(decodeCursor(second.edges[0]!.cursor)).toEqual({ position: 10, key: 'k' });
    expect(second.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: true });
    const last = await keyed({ first: 10, after: second.pageInfo.endCursor });
    expect(last.nodes).toEqual(LETTERS.slice(20));
    expect(last.pageInfo.hasNextPage).toBe(false);
  });

  it('paginateArray pages an in-memory list the same way', async () => {
    const fromArray = paginateArray({ first: 4, offset: 22 }, LETTERS);
    expect(fromArray).toEqual(await page({ first: 4, offset: 22 }));
    expect(fromArray.pageInfo.hasNextPage).toBe(false);
  });
});
