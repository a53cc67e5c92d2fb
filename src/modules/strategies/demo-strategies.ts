import type { EntityManager } from '../../db/orm.js';
import { amountToCents, centsToDecimalString } from '../../money.js';
import { DEMO_USER_ID } from '../users/demo-directory.js';
import { type StrategyDraft, validateStrategyDraft } from './strategy-rules.js';

/**
 * `npm run seed`: demo strategies that between them use every function of the condition language
 * (SPEC §3), single and periodic, enabled and not, so a new user sees scans and previews work at
 * once against the demo directory and organisation. Upserted by name: re-seeding is harmless.
 */
const DEMO_STRATEGIES: (Omit<StrategyDraft, 'amount'> & { amount: number })[] = [
  {
    name: 'welcome-gift',
    title: 'Welcome gift for every user',
    type: 'single',
    amount: 100,
    model: null,
    periodicExpr: null,
    condition: 'true()',
    maxExecPerUser: 0,
    validityDays: 30,
    enabled: true,
  },
  {
    name: 'vip-monthly',
    title: 'Monthly allowance for VIP level 2 and up',
    type: 'periodic',
    amount: 200,
    model: null,
    periodicExpr: '0 0 9 1 * *',
    condition: 'is-vip(2)',
    maxExecPerUser: 0,
    validityDays: null,
    enabled: true,
  },
  {
    name: 'stargazer-reward',
    title: 'Thanks for starring zgsm-ai.zgsm',
    type: 'single',
    amount: 50,
    model: null,
    periodicExpr: null,
    condition: 'github-star("zgsm-ai.zgsm")',
    maxExecPerUser: 0,
    validityDays: null,
    enabled: true,
  },
  {
    name: 'early-adopters',
    title: 'Registered before July 2025',
    type: 'single',
    amount: 80,
    model: null,
    periodicExpr: null,
    condition: 'register-before("2025-06-30 23:59:59")',
    maxExecPerUser: 0,
    validityDays: null,
    enabled: true,
  },
  {
    name: 'active-non-vip-weekly',
    title: 'Weekly top-up for active users below VIP 3 (at most 4 times)',
    type: 'periodic',
    amount: 20,
    model: null,
    periodicExpr: '0 0 10 * * 1',
    condition: 'access-after("2026-01-01") and not is-vip(3)',
    maxExecPerUser: 4,
    validityDays: 14,
    enabled: true,
  },
  {
    name: 'low-balance-top-up',
    title: 'Daily top-up when less than 10 is left (asks the gateway)',
    type: 'periodic',
    amount: 10,
    model: 'gpt-4',
    periodicExpr: '@daily',
    condition: 'quota-le("gpt-4", 10) and is-vip(1)',
    maxExecPerUser: 30,
    validityDays: 7,
    enabled: true,
  },
  {
    name: 'engineering-bonus',
    title: 'Engineering (HR department) or Globex (company) bonus',
    type: 'single',
    amount: 150,
    model: null,
    periodicExpr: null,
    condition: 'belong-to("Engineering", "Globex")',
    maxExecPerUser: 0,
    validityDays: 60,
    enabled: true,
  },
  {
    name: 'demo-user-special',
    title: 'Only the demo user (disabled: enable it to try runStrategy)',
    type: 'single',
    amount: 5,
    model: null,
    periodicExpr: null,
    condition: `or(match-user("${DEMO_USER_ID}"), false())`,
    maxExecPerUser: 0,
    validityDays: null,
    enabled: false,
  },
];

export async function seedDemoStrategies(em: EntityManager, timeZone: string): Promise<number> {
  for (const demo of DEMO_STRATEGIES) {
    const strategy = validateStrategyDraft({ ...demo, amount: amountToCents(demo.amount) }, timeZone);
    await em.execute(
      `insert into quota_strategy (name, title, type, amount, model, periodic_expr, condition, max_exec_per_user,
         status, validity_days, create_time, update_time)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), now())
       on conflict (name) do update set title = excluded.title, type = excluded.type, amount = excluded.amount,
         model = excluded.model, periodic_expr = excluded.periodic_expr, condition = excluded.condition,
         max_exec_per_user = excluded.max_exec_per_user, status = excluded.status,
         validity_days = excluded.validity_days, update_time = now()`,
      [
        strategy.name,
        strategy.title,
        strategy.type,
        centsToDecimalString(strategy.amount),
        strategy.model,
        strategy.periodicExpr,
        strategy.condition,
        strategy.maxExecPerUser,
        strategy.enabled,
        strategy.validityDays,
      ],
    );
  }
  return DEMO_STRATEGIES.length;
}

/** The demo conditions (a test checks that they use every function of the language). */
export const DEMO_STRATEGY_CONDITIONS = DEMO_STRATEGIES.map((strategy) => strategy.condition);
