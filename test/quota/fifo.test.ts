import { describe, expect, it } from 'vitest';
import { DomainError } from '../../src/errors.js';
import { planExpirySettlement } from '../../src/modules/quota/expiry-settlement.js';
import { attributeUsageFifo, auditDetails, type Batch, toWholeSecond } from '../../src/modules/quota/ledger.js';
import { parseAuditDetails } from '../../src/modules/quota/quota.mappers.js';
import {
  optionalRange,
  optionalReference,
  requirePositiveAmount,
  requireReason,
  requireUserId,
} from '../../src/modules/quota/quota-input.js';

/** The pure rules of the ledger: FIFO attribution, the expiry settlement, audit details, input checks. */

const NOW = new Date('2026-12-01T00:00:00Z');
const day = (offset: number) => new Date(NOW.getTime() + offset * 86_400_000);
let nextId = 1;
function batch(amount: number, expiry: Date, id = String(nextId++)): Batch {
  return { id, userId: 'u', amount: Math.round(amount * 100), expiryDate: expiry, status: 'VALID', createdAt: NOW };
}

describe('attributeUsageFifo', () => {
  it('consumes the earliest expiry first (SPEC example: 100@+10d, 100@+30d, 100@+60d, used 150)', () => {
    const batches = [batch(100, day(60)), batch(100, day(10)), batch(100, day(30))];
    const result = attributeUsageFifo(batches, 15_000);
    expect(result.map((entry) => [entry.batch.expiryDate, entry.consumed, entry.available])).toEqual([
      [day(10), 10_000, 0],
      [day(30), 5_000, 5_000],
      [day(60), 0, 10_000],
    ]);
  });

  it('breaks expiry ties by id (numerically), and treats no or negative use as none', () => {
    const batches = [batch(5, day(1), '10'), batch(5, day(1), '9')];
    expect(attributeUsageFifo(batches, 300).map((entry) => [entry.batch.id, entry.consumed])).toEqual([
      ['9', 300],
      ['10', 0],
    ]);
    expect(attributeUsageFifo(batches, 0).every((entry) => entry.consumed === 0)).toBe(true);
    expect(attributeUsageFifo(batches, -500).every((entry) => entry.consumed === 0)).toBe(true);
  });

  it('leaves use beyond every batch unattributed', () => {
    const result = attributeUsageFifo([batch(1, day(1)), batch(2, day(2))], 1_000);
    expect(result.map((entry) => entry.available)).toEqual([0, 0]);
    expect(result.reduce((sum, entry) => sum + entry.consumed, 0)).toBe(300);
  });
});

describe('planExpirySettlement: the worked examples of SPEC §5', () => {
  // expired | still valid | total/used before → total after, EXPIRE amount
  const cases = [
    { expired: [100], valid: [], used: 30, after: 0, expire: -100 },
    { expired: [100, 80], valid: [60], used: 120, after: 60, expire: -180 },
    { expired: [60], valid: [100, 80], used: 150, after: 90, expire: -150 },
    { expired: [150, 300], valid: [500, 100], used: 610, after: 440, expire: -610 },
    { expired: [100, 150], valid: [200, 120], used: 0, after: 320, expire: -250 },
  ];
  for (const example of cases) {
    it(`${example.expired.join('+')} | ${example.valid.join('+') || '–'} | used ${example.used}`, () => {
      const batches = [
        ...example.expired.map((amount, index) => batch(amount, day(-5 + index))),
        ...example.valid.map((amount, index) => batch(amount, day(10 + index))),
      ];
      const plan = planExpirySettlement(batches, example.used * 100, NOW)!;
      expect(plan.after).toBe(example.after * 100);
      expect(plan.after - plan.before).toBe(example.expire * 100);
      expect(plan.usedReset).toBe(example.used * 100);
      expect(plan.expired).toHaveLength(example.expired.length);
      // The audit's items account for exactly what left the ledger.
      expect(plan.items.reduce((sum, item) => sum + item.amount, 0)).toBe(-example.expire * 100);
      expect(plan.earliestExpiry).toEqual(day(-5));
    });
  }

  it('finds nothing to do when no batch has expired; an expiry equal to now is not past', () => {
    expect(planExpirySettlement([batch(10, day(1))], 500, NOW)).toBeNull();
    expect(planExpirySettlement([batch(10, NOW)], 500, NOW)).toBeNull();
    expect(planExpirySettlement([], 500, NOW)).toBeNull();
  });
});

describe('audit details', () => {
  it('summarises items in the contract’s shape', () => {
    const details = auditDetails({
      operation: 'TRANSFER_IN',
      amount: 1_050,
      expiryDate: day(3),
      items: [
        { amount: 1_050, expiryDate: day(3), status: 'SUCCESS' },
        { amount: 200, expiryDate: day(-1), status: 'EXPIRED', failureReason: 'EXPIRED' },
      ],
    });
    expect(details).toEqual({
      operation: 'TRANSFER_IN',
      summary: {
        totalAmount: 10.5,
        totalItems: 2,
        successfulItems: 1,
        failedItems: 0,
        expiredItems: 1,
        earliestExpiryDate: day(-1).toISOString(),
      },
      items: [
        { amount: 10.5, expiryDate: day(3).toISOString(), status: 'SUCCESS' },
        { amount: 2, expiryDate: day(-1).toISOString(), status: 'EXPIRED', failureReason: 'EXPIRED' },
      ],
    });
    const parsed = parseAuditDetails(JSON.stringify(details), 'TRANSFER_IN')!;
    expect(parsed.summary.earliestExpiryDate).toEqual(day(-1));
    expect(parsed.items[1]).toEqual({
      amount: 2,
      expiryDate: day(-1),
      status: 'EXPIRED',
      failureReason: 'EXPIRED',
      originalQuota: null,
      newQuota: null,
    });
  });

  it('reads anything else as null', () => {
    for (const text of [null, '', 'not json', '[]', '{"summary":{}}', '{"summary":{},"items":[{"amount":"x"}]}']) {
      expect(parseAuditDetails(text, 'RECHARGE')).toBeNull();
    }
  });

  it('keys instants by the whole second', () => {
    expect(toWholeSecond(new Date('2026-12-31T15:59:59.999Z')).toISOString()).toBe('2026-12-31T15:59:59.000Z');
  });
});

describe('input checks', () => {
  const code = (action: () => unknown) => {
    try {
      action();
    } catch (error) {
      return error instanceof DomainError ? error.code : 'other';
    }
    return 'ok';
  };

  it('user ids: non-empty, at most 200 characters', () => {
    expect(code(() => requireUserId('a'))).toBe('ok');
    expect(code(() => requireUserId('x'.repeat(200)))).toBe('ok');
    for (const bad of ['', '  ', 'x'.repeat(201), undefined, 5])
      expect(code(() => requireUserId(bad))).toBe('BAD_USER_INPUT');
  });

  it('amounts: > 0, at most 2 decimals, finite, in range', () => {
    expect(requirePositiveAmount(0.01)).toBe(1);
    expect(requirePositiveAmount(12.5)).toBe(1_250);
    for (const bad of [0, -0.01, 0.001, Number.NaN, Number.POSITIVE_INFINITY, 1e15, '5']) {
      expect(code(() => requirePositiveAmount(bad))).toBe('BAD_USER_INPUT');
    }
  });

  it('reasons 1–500 characters (trimmed), references 1–200 when given, from ≤ to', () => {
    expect(requireReason('  why  ')).toBe('why');
    expect(code(() => requireReason('x'.repeat(500)))).toBe('ok');
    expect(code(() => requireReason('x'.repeat(501)))).toBe('BAD_USER_INPUT');
    expect(optionalReference(null)).toBeUndefined();
    expect(code(() => optionalReference(''))).toBe('BAD_USER_INPUT');
    expect(code(() => optionalReference('x'.repeat(201)))).toBe('BAD_USER_INPUT');
    expect(code(() => optionalRange(day(1), day(0)))).toBe('BAD_USER_INPUT');
    expect(optionalRange(day(0), day(0))).toEqual({ from: day(0), to: day(0) });
  });
});
