import type { EntityManager } from '../../src/db/orm.js';
import type { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { type Cents, decimalToCents } from '../../src/money.js';

/**
 * The ledger invariants of SPEC §11, checked against the database and the gateway's counters — the one
 * implementation, used by the tests (assertLedgerInvariants, after every scenario that touches the
 * ledger) and by the benches (bench/support.ts, over their own pool and simulator):
 * - for every user the ledger knows (a batch or an audit): Σ VALID batches = gateway total;
 * - Σ of the user's audit amounts = Σ VALID (every change to a batch has its audit);
 * - no batch amount is negative; one VALID batch per user and expiry;
 * - no voucher redeemed twice;
 * - no single strategy granting a user twice, by audits and by executions (once those tables exist).
 * Users that exist only in the gateway (set directly by a test) are not the ledger's business.
 */

/** Runs one statement without parameters and answers its rows (em.execute, or a pg pool's query). */
export type InvariantQuery = <Row>(sql: string) => Promise<Row[]>;

export interface InvariantOptions {
  /** Users the gateway never hears of (raw-SQL baselines): checked against the database only. */
  offGateway?: (userId: string) => boolean;
  /** Also require every issued voucher to have been redeemed (benches that redeem all they issue). */
  everyVoucherRedeemed?: boolean;
}

/** Every violation found (empty when all hold). `gatewayTotal` is the gateway's total of a user, 0 if unknown. */
export async function ledgerViolations(
  query: InvariantQuery,
  gatewayTotal: (userId: string) => Cents,
  options: InvariantOptions = {},
): Promise<string[]> {
  const offGateway = options.offGateway ?? (() => false);
  const violations: string[] = [];

  const users = await query<{ user_id: string; valid: string; audited: string }>(
    `select u.user_id,
            coalesce((select sum(amount) from quota q where q.user_id = u.user_id and q.status = 'VALID'), 0)::text as valid,
            coalesce((select sum(amount) from quota_audit a where a.user_id = u.user_id), 0)::text as audited
       from (select user_id from quota union select user_id from quota_audit) u
      order by u.user_id`,
  );
  for (const user of users) {
    const valid = decimalToCents(user.valid);
    const audited = decimalToCents(user.audited);
    if (!offGateway(user.user_id)) {
      const total = gatewayTotal(user.user_id);
      if (total !== valid) violations.push(`${user.user_id}: gateway total ${total} cents ≠ Σ VALID ${valid} cents`);
    }
    if (audited !== valid) violations.push(`${user.user_id}: Σ audits ${audited} cents ≠ Σ VALID ${valid} cents`);
  }

  const negative = await query<{ id: string; user_id: string; amount: string }>(
    'select id::text, user_id, amount::text from quota where amount < 0',
  );
  for (const row of negative) violations.push(`batch ${row.id} of ${row.user_id} is negative: ${row.amount}`);

  const doubleValid = await query<{ user_id: string; expiry_date: Date; n: string }>(
    `select user_id, expiry_date, count(*)::text as n from quota where status = 'VALID'
      group by user_id, expiry_date having count(*) > 1`,
  );
  for (const row of doubleValid) violations.push(`${row.user_id}: ${row.n} VALID batches expiring ${row.expiry_date}`);

  const redeemedTwice = await query<{ code: string; n: string }>(
    `select left(voucher_code, 40) as code, count(*)::text as n from voucher_redemption
      group by voucher_code having count(*) > 1`,
  );
  for (const row of redeemedTwice) violations.push(`voucher ${row.code}… redeemed ${row.n} times`);

  if (options.everyVoucherRedeemed) {
    const [unredeemed] = await query<{ n: string }>(
      `select count(*)::text as n from quota_audit a where a.operation = 'TRANSFER_OUT'
          and not exists (select 1 from voucher_redemption r where md5(r.voucher_code) = md5(a.voucher_code))`,
    );
    if (Number(unredeemed?.n ?? 0) > 0) violations.push(`${unredeemed!.n} issued vouchers never redeemed`);
  }

  violations.push(...(await singleStrategyViolations(query)));
  return violations;
}

/** Throws with every violation listed, for tests. The simulator is read in this process. */
export async function assertLedgerInvariants(em: EntityManager, simulator: GatewaySimulator): Promise<void> {
  const violations = await ledgerViolations(
    (sql) => em.execute(sql),
    (userId) => simulator.getUser(userId).total,
  );
  if (violations.length > 0) throw new Error(`ledger invariants broken:\n- ${violations.join('\n- ')}`);
}

/** Single strategies grant a user at most once ever: by executions and by RECHARGE audits. */
async function singleStrategyViolations(query: InvariantQuery): Promise<string[]> {
  const [tables] = await query<{ strategy: string | null; execute: string | null }>(
    `select to_regclass('quota_strategy')::text as strategy, to_regclass('quota_execute')::text as execute`,
  );
  if (!tables?.strategy) return [];
  const violations: string[] = [];
  const audits = await query<{ strategy_id: string; user_id: string; n: string }>(
    `select a.strategy_id::text, a.user_id, count(*)::text as n
       from quota_audit a join quota_strategy s on s.id = a.strategy_id
      where a.operation = 'RECHARGE' and lower(s.type) = 'single'
      group by a.strategy_id, a.user_id having count(*) > 1`,
  );
  for (const row of audits) {
    violations.push(`single strategy ${row.strategy_id} granted ${row.user_id} ${row.n} times (audits)`);
  }
  if (tables.execute) {
    const executions = await query<{ strategy_id: string; user_id: string; n: string }>(
      `select e.strategy_id::text, e.user_id, count(*)::text as n
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
