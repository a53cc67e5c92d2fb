import 'reflect-metadata';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../db/embedded-postgres.js';
import { splitDiff } from '../db/migration-generator.js';
import { migrate, openMainOrm } from '../db/orm.js';
import { createLogger } from '../logger.js';

/**
 * `npm run migration:create [-- --name what_it_does]`: applies every existing migration to a
 * throwaway database (an embedded cluster, or DATABASE_URL when set), diffs the entities against it
 * and writes the new migration to migrations/, then regenerates migrations/index.ts. Only statements
 * that add to the schema are written (src/db/migration-generator.ts says why); the rest are printed and
 * left in the file as comments. Review the generated SQL and document it before committing it.
 */
const logger = createLogger('warn');
const nameIndex = process.argv.indexOf('--name');
const name = nameIndex > 0 ? process.argv[nameIndex + 1] : undefined;

async function regenerateIndex(): Promise<void> {
  const files = (await readdir('migrations')).filter((file) => /^Migration\d{14}.*\.ts$/.test(file)).sort();
  const classes = files.map((file) => file.replace(/\.ts$/, ''));
  const imports = classes.map((cls) => `import { ${cls} } from './${cls}.js';`).join('\n');
  const list = classes.map((cls) => `  { name: '${cls}', class: ${cls} },`).join('\n');
  await writeFile(
    'migrations/index.ts',
    `import type { MigrationObject } from '@mikro-orm/core';\n${imports}\n\n/**\n * Every migration, in order. Static imports make discovery behave the same under tsc output, tsx\n * and vitest. \`npm run migration:create\` regenerates this file.\n */\nexport const migrationsList: MigrationObject[] = [\n${list}\n];\n`,
  );
}

async function main(): Promise<void> {
  let url = process.env.DATABASE_URL;
  let cleanup = async () => {};
  if (!url) {
    const folder = await mkdtemp(path.join(tmpdir(), 'quota-manager-migration-'));
    await chmod(folder, 0o755);
    const database = await startEmbeddedPostgres({ root: path.join(folder, 'data'), persistent: false, logger });
    url = database.url.replace(/\/postgres$/, '/migration_diff');
    cleanup = async () => {
      await database.stop();
      await rm(folder, { recursive: true, force: true });
    };
  }
  try {
    const orm = await openMainOrm(url, logger);
    try {
      await migrate(orm);
      const result = await orm.migrator.createMigration('migrations', false, false, name);
      const { written, held } = splitDiff(result.diff);
      if (held.length > 0) {
        process.stdout.write(
          `held back (not written; the migrations build what no entity describes, so the ORM proposes removing it):\n` +
            `${held.map((statement) => `  ${statement}`).join('\n')}\n`,
        );
      }
      if (!result.fileName) {
        process.stdout.write('no additive schema changes: no migration created\n');
        return;
      }
      await regenerateIndex();
      process.stdout.write(`created migrations/${result.fileName}\n${written.join('\n')}\n`);
    } finally {
      await orm.close(true);
    }
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`migration:create: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
