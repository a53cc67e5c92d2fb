import 'reflect-metadata';
import { seedDemoDirectory } from '../modules/users/demo-directory.js';
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
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`seed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
