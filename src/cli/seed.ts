import 'reflect-metadata';
import { createLogger } from '../logger.js';
import { seedDemoOrganisation } from '../modules/employees/demo-organisation.js';
import { seedDemoPermissions } from '../modules/permissions/demo-permissions.js';
import { seedDemoQuota } from '../modules/quota/demo-quota.js';
import { seedDemoStrategies } from '../modules/strategies/demo-strategies.js';
import { seedDemoDirectory } from '../modules/users/demo-directory.js';
import { seedDemoTransfer } from '../modules/vouchers/demo-transfer.js';
import { withDatabase } from './with-database.js';

/**
 * `npm run seed`: loads demo data into the server's database (see with-database.ts for which one).
 * Safe to run again: every step upserts. Later modules add their demo data here.
 */
async function main(): Promise<void> {
  await withDatabase(async (orm, config) => {
    const em = orm.em.fork();
    if (config.authDatabaseUrl) {
      // The directory is a real login system's database: never write demo users into it.
      process.stdout.write('AUTH_DATABASE_URL is set: the user directory is not seeded\n');
    } else {
      const users = await seedDemoDirectory(em);
      process.stdout.write(`seeded ${users} demo users into auth_users\n`);
    }
    const employees = await seedDemoOrganisation(em);
    process.stdout.write(
      `seeded ${employees} demo employees into employee_department (the HR simulator's organisation)\n`,
    );
    const permissions = await seedDemoPermissions(orm, config);
    process.stdout.write(`seeded ${permissions} demo permission settings (whitelists, star and quota checks)\n`);
    const strategies = await seedDemoStrategies(orm.em.fork(), config.timeZone);
    process.stdout.write(`seeded ${strategies} demo strategies (triggerScan or runStrategy grants with them)\n`);
    if (!config.authDatabaseUrl) {
      const quota = await seedDemoQuota(orm, config, createLogger('warn'));
      const where = quota.gatewayConfigured
        ? ''
        : ' (no AIGATEWAY_URL: gateway totals follow on triggerScan(SYNC_QUOTAS))';
      process.stdout.write(`seeded ${quota.grants} demo grants for ${quota.users} demo users${where}\n`);
      const transfer = await seedDemoTransfer(orm, config, createLogger('warn'));
      if (transfer.pendingVoucher) {
        process.stdout.write(
          `seeded a redeemed demo transfer; a voucher for the demo user to redeem (transferIn):\n  ${transfer.pendingVoucher}\n`,
        );
      }
    }
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`seed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
