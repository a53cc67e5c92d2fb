import type { EntityManager } from '../../src/db/orm.js';
import type { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { decimalToCents } from '../../src/money.js';

/**
 * The ledger invariants of SPEC §11, checked against the database and the simulator's counters.
 * Call it after every scenario that touches the ledger:
 * - for every user the ledger knows (a batch or an audit): Σ VALID batches = gateway total;
 * - Σ of the user's audit amounts = Σ VALID (every change to a batch has its audit);
 * - no batch amount is negative; one VALID batch per user and expiry;
 * - no voucher redeemed twice;
 * - no single strategy granting a user twice (checked once the strategy tables exist).
 * Users that exist only in the simulator (set directly by a test) are not the ledger's business.
 */
export async function assertLedgerInvariants(em: EntityManager, simulator: GatewaySimulator): Promise<void> {
  const violations: string[] = [];

  const users = await em.execute<{ user_id: string; valid: string; audited: string }[]>(
    `select u.user_id,
            coalesce((select sum(amount) from quota q where q.user_id = u.user_id and q.status = 'VALID'), 0)::text as valid,
            coalesce((select sum(amount) from quota_audit a where a.user_id = u.user_id), 0)::text as audited
       from (select user_id from quota union select user_id from quota_audit) u
      order by u.user_id`,
  );
  for (const user of users) {
    const valid = decimalToCents(user.valid);
    const audited = decimalToCents(user.audited);
    const gatewayTotal = simulator.getUser(user.user_id).total;
    if (gatewayTotal !== valid) {
      violations.push(`${user.user_id}: gateway total ${gatewayTotal} cents ≠ Σ VALID ${valid} cents`);
    }
    if (audited !== valid) violations.push(`${user.user_id}: Σ audits ${audited} cents ≠ Σ VALID ${valid} cents`);
  }

  const negative = await em.execute<{ id: string; user_id: string; amount: string }[]>(
    'select id, user_id, amount from quota where amount < 0',
  );
  for (const row of negative) violations.push(`batch ${row.id} of ${row.user_id} is negative: ${row.amount}`);

  const doubleValid = await em.execute<{ user_id: string; expiry_date: Date; n: string }[]>(
    `select user_id, expiry_date, count(*) as n from quota where status = 'VALID'
      group by user_id, expiry_date having count(*) > 1`,
  );
  for (const row of doubleValid) violations.push(`${row.user_id}: ${row.n} VALID batches expiring ${row.expiry_date}`);

  const redeemedTwice = await em.execute<{ code: string; n: string }[]>(
    `select left(voucher_code, 40) as code, count(*) as n from voucher_redemption
      group by voucher_code having count(*) > 1`,
  );
  for (const row of redeemedTwice) violations.push(`voucher ${row.code}… redeemed ${row.n} times`);

  violations.push(...(await singleStrategyViolations(em)));
  if (violations.length > 0) throw new Error(`ledger invariants broken:\n- ${violations.join('\n- ')}`);
}

/** Single strategies grant a user at most once ever: by executions and by RECHARGE audits. */
async function singleStrategyViolations(em: EntityManager): Promise<string[]> {
  const [tables] = await em.execute<{ strategy: string | null; execute: string | null }[]>(
    `select to_regclass('quota_strategy')::text as strategy, to_regclass('quota_execute')::text as execute`,
  );
  if (!tables?.strategy) return [];
  const violations: string[] = [];
  const audits = await em.execute<{ strategy_id: string; user_id: string; n: string }[]>(
    `select a.strategy_id, a.user_id, count(*) as n
       from quota_audit a join quota_strategy s on s.id = a.strategy_id
      where a.operation = 'RECHARGE' and lower(s.type) = 'single'
      group by a.strategy_id, a.user_id having count(*) > 1`,
  );
  for (const row of audits) {
    violations.push(`single strategy ${row.strategy_id} granted ${row.user_id} ${row.n} times (audits)`);
  }
  if (tables.execute) {
    const executions = await em.execute<{ strategy_id: string; user_id: string; n: string }[]>(
      `select e.strategy_id, e.user_id, count(*) as n
         from quota_execute e join quota_strategy s on s.id = e.strategy_id
        where lower(e.status) = 'completed' and lower(s.type) = 'single'
        group by e.strategy_id, e.user_id having count(*) > 1`,
    );
    for (const row of executions) {
      violations.push(`single strategy ${row.strategy_id} completed ${row.n} times for ${row.user_id}`);
    }
  }
  return violations;
}
