import { describe, expect, it } from 'vitest';
import { DomainError, ErrorCode } from '../../../src/errors.js';
import {
  type ConditionContext,
  type ConditionOutcome,
  type ConditionUser,
  evaluateCondition,
  parseCondition,
} from '../../../src/modules/strategies/condition/index.js';
import type { Cents } from '../../../src/money.js';

const ZONE = 'Asia/Shanghai';

// 2025-01-01 00:00:00 in Shanghai.
const NEW_YEAR = new Date('2024-12-31T16:00:00.000Z');
const at = (offsetMs: number) => new Date(NEW_YEAR.getTime() + offsetMs);

const alice: ConditionUser = {
  id: 'alice',
  createdAt: at(0),
  accessTime: at(1),
  vip: 3,
  githubStar: ' zgsm-ai.zgsm ,\topenai.gpt-4\n',
  company: 'Acme',
  employeeNumber: 'E1',
};
/** Every attribute missing. */
const bob: ConditionUser = {
  id: 'bob',
  createdAt: null,
  accessTime: null,
  vip: null,
  githubStar: null,
  company: null,
  employeeNumber: null,
};
const carol: ConditionUser = {
  id: 'carol',
  createdAt: at(1),
  accessTime: at(0),
  vip: 0,
  githubStar: 'zgsm-ai.zgsmx,ZGSM-AI.ZGSM,zgsm',
  company: 'Beta',
  employeeNumber: 'E404',
};
/** Not in the table's `remaining`: an AuthUser-like record with undefined fields. */
const dave: ConditionUser = { id: 'dave' };

/** Employee records by employee number; E404 has none. */
const PATHS: Record<string, string[]> = { E1: ['研发中心', '平台部', '后端组'] };

interface Harness {
  context: ConditionContext;
  gatewayCalls: string[];
  departmentCalls: string[];
}

function harness(options: { sync?: boolean; remaining?: Record<string, Cents>; gatewayDown?: boolean } = {}): Harness {
  const gatewayCalls: string[] = [];
  const departmentCalls: string[] = [];
  const remaining = options.remaining ?? { alice: 1000, bob: 0, carol: -500 };
  return {
    gatewayCalls,
    departmentCalls,
    context: {
      departmentPathOf: async (user) => {
        departmentCalls.push(user.id);
        if (!options.sync || !user.employeeNumber) return null;
        return PATHS[user.employeeNumber] ?? null;
      },
      remainingQuota: async (userId) => {
        gatewayCalls.push(userId);
        if (options.gatewayDown) throw new DomainError(ErrorCode.GATEWAY_UNAVAILABLE, 'gateway down');
        const value = remaining[userId];
        if (value === undefined) throw new Error(`no quota for ${userId}`);
        return value;
      },
    },
  };
}

async function evaluate(expression: string, user: ConditionUser, context = harness().context): Promise<boolean> {
  const parsed = parseCondition(expression, ZONE);
  if (!parsed.ok) throw parsed.error;
  const outcome = await evaluateCondition(parsed.ast, user, context);
  if (!outcome.ok) throw outcome.error;
  return outcome.matches;
}

async function outcomeOf(
  expression: string,
  user: ConditionUser,
  context: ConditionContext,
): Promise<ConditionOutcome> {
  const parsed = parseCondition(expression, ZONE);
  if (!parsed.ok) throw parsed.error;
  return evaluateCondition(parsed.ast, user, context);
}

/** [expression, alice, bob, carol] */
type Row = [string, boolean, boolean, boolean];

const ROWS: Row[] = [
  ['true()', true, true, true],
  ['false()', false, false, false],
  ['match-user("alice")', true, false, false],
  ['match-user("x", "carol", "bob")', false, true, true],
  ['match-user("Alice")', false, false, false],
  // created_at <= ts: equal counts, one millisecond later does not, a missing date never matches.
  ['register-before("2025-01-01")', true, false, false],
  ['register-before("2025-01-01 00:00:00")', true, false, false],
  ['register-before("2024-12-31T16:00:00.001Z")', true, false, true],
  ['register-before("2024-12-31T23:59:59+08:00")', false, false, false],
  // access_time > ts: equal does not count.
  ['access-after("2025-01-01")', true, false, false],
  ['access-after("2024-12-31T16:00:00.001Z")', false, false, false],
  ['access-after("2024-12-31 23:59:59")', true, false, true],
  // github-star: items split on ',', trimmed, exact and case-sensitive.
  ['github-star("zgsm-ai.zgsm")', true, false, false],
  ['github-star("openai.gpt-4")', true, false, false],
  ['github-star("ZGSM-AI.ZGSM")', false, false, true],
  ['github-star("zgsm")', false, false, true],
  ['github-star("openai")', false, false, false],
  // is-vip: vip >= level; missing vip never matches.
  ['is-vip(3)', true, false, false],
  ['is-vip(4)', false, false, false],
  ['is-vip(0)', true, false, true],
  ['is-vip(-1)', true, false, true],
  // belong-to without employee sync: the company.
  ['belong-to("Acme")', true, false, false],
  ['belong-to("Nope", "Beta")', false, false, true],
  ['belong-to("研发中心")', false, false, false],
  ['belong-to("acme")', false, false, false],
  // quota-le: remaining <= amount (alice 10.00, bob 0, carol −5.00).
  ['quota-le("gpt-4", 10)', true, true, true],
  ['quota-le("gpt-4", 9.99)', false, true, true],
  ['quota-le("any-model", 0)', false, true, true],
  ['quota-le("m", -5)', false, false, true],
  ['quota-le("m", -5.01)', false, false, false],
  // and / or / not, prefix and infix, n-ary.
  ['and(is-vip(1), github-star("zgsm-ai.zgsm"))', true, false, false],
  ['is-vip(0) and belong-to("Beta")', false, false, true],
  ['and(true(), true(), is-vip(0))', true, false, true],
  ['or(match-user("bob"), is-vip(3), belong-to("Beta"))', true, true, true],
  ['match-user("bob") or is-vip(99) or false()', false, true, false],
  ['not(is-vip(1))', false, true, true],
  // not of a missing attribute is true, like in SQL with coalesce.
  ['not github-star("zgsm-ai.zgsm")', false, true, true],
  ['not register-before("2030-01-01")', false, true, false],
  ['not access-after("2000-01-01")', false, true, false],
  ['not belong-to("Acme")', false, true, true],
  ['is-vip(1) or is-vip(0) and belong-to("Beta")', true, false, true],
  ['not (is-vip(1) or quota-le("m", 0))', false, false, false],
];

describe('evaluateCondition', () => {
  it.each(ROWS)('%s → alice %s, bob %s, carol %s', async (expression, forAlice, forBob, forCarol) => {
    expect([
      await evaluate(expression, alice),
      await evaluate(expression, bob),
      await evaluate(expression, carol),
    ]).toEqual([forAlice, forBob, forCarol]);
  });

  it('treats undefined attributes (an AuthUser with unset fields) as missing', async () => {
    const context = harness({ remaining: { dave: 0 } }).context;
    expect(await evaluate('register-before("2030-01-01")', dave, context)).toBe(false);
    expect(await evaluate('access-after("2000-01-01")', dave, context)).toBe(false);
    expect(await evaluate('is-vip(0)', dave, context)).toBe(false);
    expect(await evaluate('github-star("x")', dave, context)).toBe(false);
    expect(await evaluate('belong-to("x")', dave, context)).toBe(false);
    expect(await evaluate('match-user("dave") and quota-le("m", 0)', dave, context)).toBe(true);
  });

  describe('belong-to with employee sync', () => {
    const synced = () => harness({ sync: true }).context;

    it('matches any element of the department path: root, middle or leaf, exactly', async () => {
      expect(await evaluate('belong-to("研发中心")', alice, synced())).toBe(true);
      expect(await evaluate('belong-to("平台部")', alice, synced())).toBe(true);
      expect(await evaluate('belong-to("后端组")', alice, synced())).toBe(true);
      expect(await evaluate('belong-to("Nope", "后端组")', alice, synced())).toBe(true);
      expect(await evaluate('belong-to("平台")', alice, synced())).toBe(false);
      expect(await evaluate('belong-to("研发中心,平台部")', alice, synced())).toBe(false);
    });

    it('ignores the company of a user with an employee record', async () => {
      expect(await evaluate('belong-to("Acme")', alice, synced())).toBe(false);
    });

    it('falls back to the company without an employee record or without an employee number', async () => {
      expect(await evaluate('belong-to("Beta")', carol, synced())).toBe(true);
      expect(await evaluate('belong-to("研发中心")', carol, synced())).toBe(false);
      expect(
        await evaluate('belong-to("Acme")', { ...alice, employeeNumber: null }, harness({ sync: true }).context),
      ).toBe(true);
    });

    it('accepts a synchronous department look-up and asks it at most once per user', async () => {
      let calls = 0;
      const context: ConditionContext = {
        departmentPathOf: () => {
          calls += 1;
          return ['Root', 'Leaf'];
        },
        remainingQuota: async () => 0,
      };
      expect(await evaluate('belong-to("Leaf") and belong-to("Root") and not belong-to("Other")', alice, context)).toBe(
        true,
      );
      expect(calls).toBe(1);
    });

    it('does not look departments up when no belong-to needs them', async () => {
      const { context, departmentCalls } = harness({ sync: true });
      expect(await evaluate('is-vip(1) or belong-to("研发中心")', alice, context)).toBe(true);
      expect(departmentCalls).toEqual([]);
    });
  });

  describe('the gateway (quota-le)', () => {
    it('is not asked when the rest of the expression decides: or with a true operand, and with a false one', async () => {
      const { context, gatewayCalls } = harness();
      expect(await evaluate('or(true(), quota-le("m", 1))', alice, context)).toBe(true);
      expect(await evaluate('and(false(), quota-le("m", 1))', alice, context)).toBe(false);
      // Also when the deciding operand comes after quota-le.
      expect(await evaluate('quota-le("m", 1) and is-vip(99)', alice, context)).toBe(false);
      expect(await evaluate('quota-le("m", 1) or github-star("zgsm-ai.zgsm")', alice, context)).toBe(true);
      expect(await evaluate('not (quota-le("m", 1) or true())', alice, context)).toBe(false);
      expect(gatewayCalls).toEqual([]);
    });

    it('is asked once per user however many quota-le calls there are', async () => {
      const { context, gatewayCalls } = harness();
      expect(
        await evaluate('quota-le("a", 10) and not quota-le("b", 9.99) and quota-le("c", 1000)', alice, context),
      ).toBe(true);
      expect(gatewayCalls).toEqual(['alice']);
    });

    it('turns a gateway failure into a per-user failure, not an exception', async () => {
      const { context, gatewayCalls } = harness({ gatewayDown: true });
      const outcome = await outcomeOf('is-vip(1) and quota-le("m", 100)', alice, context);
      expect(outcome.ok).toBe(false);
      expect(!outcome.ok && outcome.error).toBeInstanceOf(DomainError);
      expect(!outcome.ok && (outcome.error as DomainError).code).toBe(ErrorCode.GATEWAY_UNAVAILABLE);
      expect(gatewayCalls).toEqual(['alice']);
      // A user decided without the gateway is not a failure while it is down.
      expect(await outcomeOf('is-vip(99) and quota-le("m", 100)', alice, context)).toEqual({
        ok: true,
        matches: false,
      });
    });

    it('turns a failing department look-up into a per-user failure', async () => {
      const context: ConditionContext = {
        departmentPathOf: async () => {
          throw new Error('database gone');
        },
        remainingQuota: async () => 0,
      };
      const outcome = await outcomeOf('belong-to("x")', alice, context);
      expect(outcome.ok).toBe(false);
      expect(!outcome.ok && (outcome.error as Error).message).toBe('database gone');
      expect(await outcomeOf('true() or belong-to("x")', alice, context)).toEqual({ ok: true, matches: true });
    });
  });
});
