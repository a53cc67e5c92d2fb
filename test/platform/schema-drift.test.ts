import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { printApiSchema } from '../../src/graphql/schema.js';

/** schema.graphql is emitted from the code; it must never drift from what the code serves. */
describe('schema.graphql', () => {
  it('equals the schema the code builds', async () => {
    const committed = await readFile(new URL('../../schema.graphql', import.meta.url), 'utf8');
    const emitted = await printApiSchema();
    // The message comes first in the failure output, the diff after it.
    expect(
      committed,
      'schema.graphql differs from the schema the code builds: run npm run schema:emit (and the contract check)',
    ).toBe(emitted);
  });
});
