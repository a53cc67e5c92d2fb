import { writeFile } from 'node:fs/promises';
import { generateClientTypes } from './client-codegen.js';

/**
 * `npm run codegen`: regenerates test/client/generated/ (schema.ts, graphql.ts) from schema.graphql
 * and the client operations. Run it after `npm run schema:emit` or after changing an operation; a
 * test fails when a checked-in file is stale.
 */
for (const [file, content] of Object.entries(await generateClientTypes())) {
  await writeFile(file, content);
  process.stdout.write(`${file} written\n`);
}
