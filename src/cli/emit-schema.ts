import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import { printApiSchema } from '../graphql/schema.js';

/** `npm run schema:emit`: writes schema.graphql from the code. A test fails when the file drifts. */
await writeFile('schema.graphql', await printApiSchema());
process.stdout.write('schema.graphql written\n');
