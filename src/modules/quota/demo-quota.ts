import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, endOfMonth, SystemClock } from '../../clock.js';
import type { AppConfig } from '../../config.js';
import type { Logger } from '../../logger.js';
import { GatewayClient } from '../gateway/gateway.client.js';
import { GatewaySimulator } from '../gateway/simulator/gateway-simulator.js';
import { IdempotencyKeys } from '../idempotency/idempotency-keys.js';
import { demoUsers } from '../users/demo-directory.js';
import { UserDirectory } from '../users/user-directory.js';
import { Ledger } from './ledger.js';
import { QuotaService } from './quota.service.js';

/** Who gets demo quota, and how much (quota units) expiring at the end of this month / the next. */
const DEMO_GRANTS: { userIndex: number; thisMonth: number; nextMonth: number }[] = [
  { userIndex: 0, thisMonth: 100, nextMonth: 250 },
  { userIndex: 1, thisMonth: 50, nextMonth: 100 },
  { userIndex: 2, thisMonth: 0, nextMonth: 80 },
  { userIndex: 3, thisMonth: 30, nextMonth: 0 },
  { userIndex: 4, thisMonth: 20, nextMonth: 20 },
];

export const DEMO_QUOTA_ACTOR = 'seed';

export interface DemoQuotaResult {
  users: number;
  grants: number;
  /** false when no gateway was configured: the totals went to a throwaway simulator. */
  gatewayConfigured: boolean;
}

/**
 * `npm run seed`: grants for a few demo users through the real QuotaService (batches, RECHARGE
 * audits, gateway totals), so `myQuota` shows batches at once. Users already seeded (a RECHARGE by
 * the `seed` actor) are skipped, so re-seeding does not add again.
 *
 * Without AIGATEWAY_URL the server's gateway is its in-memory simulator, which a separate tool cannot
 * reach: the grants then push to a throwaway simulator, and the server's totals follow from quota sync
 * (`triggerScan(SYNC_QUOTAS)`).
 */
export async function seedDemoQuota(
  orm: MikroORM,
  config: AppConfig,
  logger: Logger,
  clock: Clock = new SystemClock(config.timeZone),
): Promise<DemoQuotaResult> {
  const simulator = config.gateway.url ? null : new GatewaySimulator();
  const baseUrl = config.gateway.url ?? (await simulator!.start(0));
  const gateway = new GatewayClient({ ...config.gateway, baseUrl }, logger);
  try {
    const ledger = new Ledger(gateway, clock, logger);
    const keys = new IdempotencyKeys(clock, config.idempotencyKeyRetentionHours);
    const quota = new QuotaService(ledger, gateway, new UserDirectory(orm, true), config, clock, logger, keys);
    const now = clock.now();
    const expiries = { thisMonth: endOfMonth(now, clock.timeZone, 0), nextMonth: endOfMonth(now, clock.timeZone, 1) };
    let users = 0;
    let grants = 0;
    for (const plan of DEMO_GRANTS) {
      const userId = demoUsers[plan.userIndex]!.id;
      const em = orm.em.fork();
      const seeded = await em.execute(
        `select 1 from quota_audit where user_id = ? and operation = 'RECHARGE' and actor = ? limit 1`,
        [userId, DEMO_QUOTA_ACTOR],
      );
      if (seeded.length > 0) continue;
      users += 1;
      for (const key of ['thisMonth', 'nextMonth'] as const) {
        if (plan[key] <= 0) continue;
        await quota.grantQuota(em, {
          userId,
          amount: plan[key] * 100,
          expiryDate: expiries[key],
          actor: DEMO_QUOTA_ACTOR,
          reason: 'demo data',
        });
        grants += 1;
      }
    }
    return { users, grants, gatewayConfigured: simulator === null };
  } finally {
    gateway.close();
    await simulator?.stop();
  }
}
