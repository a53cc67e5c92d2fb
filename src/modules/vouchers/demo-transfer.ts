import type { MikroORM } from '@mikro-orm/postgresql';
import { type Clock, endOfMonth, SystemClock } from '../../clock.js';
import type { AppConfig } from '../../config.js';
import type { Logger } from '../../logger.js';
import { EmployeeDirectory } from '../employees/employee-directory.js';
import { GatewayClient } from '../gateway/gateway.client.js';
import { GatewaySimulator } from '../gateway/simulator/gateway-simulator.js';
import { IdempotencyKeys } from '../idempotency/idempotency-keys.js';
import { Ledger } from '../quota/ledger.js';
import { demoUsers } from '../users/demo-directory.js';
import { UserDirectory } from '../users/user-directory.js';
import { VoucherCodec } from './voucher-codec.js';
import { VouchersService } from './vouchers.service.js';

export interface DemoTransferResult {
  /** false when this demo was already seeded. */
  created: boolean;
  /** A voucher for the demo user, issued and left unredeemed so `transferIn` can be tried. */
  pendingVoucher: string | null;
}

/**
 * `npm run seed` (after the demo grants): a demo giver sends the demo user 10 of next month's quota
 * through the real VouchersService and the demo user redeems it, then a second voucher of 5 is left
 * for the demo user to redeem by hand. Seeded once: a TRANSFER_OUT between the two skips it.
 * Gateway totals go where the demo grants' went (see demo-quota.ts).
 */
export async function seedDemoTransfer(
  orm: MikroORM,
  config: AppConfig,
  logger: Logger,
  clock: Clock = new SystemClock(config.timeZone),
): Promise<DemoTransferResult> {
  const giver = demoUsers[1]!;
  const receiver = demoUsers[0]!;
  const done = await orm.em
    .fork()
    .execute(
      `select 1 from quota_audit where user_id = ? and operation = 'TRANSFER_OUT' and related_user = ? limit 1`,
      [giver.id, receiver.id],
    );
  if (done.length > 0) return { created: false, pendingVoucher: null };
  if (!config.voucherSigningKey) throw new Error('no voucher signing key (VOUCHER_SIGNING_KEY)');

  const simulator = config.gateway.url ? null : new GatewaySimulator();
  const baseUrl = config.gateway.url ?? (await simulator!.start(0));
  const gateway = new GatewayClient({ ...config.gateway, baseUrl }, logger);
  try {
    const directory = new UserDirectory(orm, true);
    const vouchers = new VouchersService(
      new Ledger(gateway, clock, logger),
      gateway,
      directory,
      new EmployeeDirectory(config, directory),
      new VoucherCodec(
        { signingKey: config.voucherSigningKey, previousKeys: config.voucherPreviousKeys },
        config.timeZone,
      ),
      clock,
      logger,
      new IdempotencyKeys(clock, config.idempotencyKeyRetentionHours),
    );
    const nextMonth = endOfMonth(clock.now(), clock.timeZone, 1);
    const giverClaims = { userId: giver.id, name: giver.name, phone: giver.phone, github: giver.githubName };
    const first = await vouchers.transferOut(orm.em.fork(), giverClaims, {
      receiverId: receiver.id,
      items: [{ amount: 10, expiryDate: nextMonth }],
    });
    await vouchers.transferIn(orm.em.fork(), receiver.id, first.voucherCode);
    const pending = await vouchers.transferOut(orm.em.fork(), giverClaims, {
      receiverId: receiver.id,
      items: [{ amount: 5, expiryDate: nextMonth }],
    });
    return { created: true, pendingVoucher: pending.voucherCode };
  } finally {
    gateway.close();
    await simulator?.stop();
  }
}
