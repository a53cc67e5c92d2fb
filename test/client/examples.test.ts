import { readdir, readFile } from 'node:fs/promises';
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';

/** Every ready operation in examples/ (and every client operation) is valid against schema.graphql. */

const root = new URL('../../', import.meta.url);

async function graphqlFiles(folder: string): Promise<string[]> {
  const names = await readdir(new URL(folder, root));
  return names.filter((name) => name.endsWith('.graphql')).map((name) => `${folder}${name}`);
}

const schema = buildSchema(await readFile(new URL('schema.graphql', root), 'utf8'));
const examples = await graphqlFiles('examples/');
const operations = await graphqlFiles('test/client/operations/');

describe('examples/*.graphql', () => {
  it('exist', () => {
    expect(examples.length).toBeGreaterThanOrEqual(10);
  });

  it.each([...examples, ...operations])('%s validates against schema.graphql', async (file) => {
    const document = parse(await readFile(new URL(file, root), 'utf8'));
    const errors = validate(schema, document).map((error) => error.message);
    expect(errors, file).toEqual([]);
    // One named operation per file, so each can be run by name from GraphiQL or a client.
    const operationNames = document.definitions.flatMap((definition) =>
      definition.kind === 'OperationDefinition' ? [definition.name?.value ?? '(anonymous)'] : [],
    );
    expect(operationNames, file).toHaveLength(1);
    expect(operationNames[0], file).not.toBe('(anonymous)');
  });

  it('are refused when they do not fit the schema (the check is real)', () => {
    const document = parse('query Broken($id: Int!) { strategy(id: $id) { nope } }');
    expect(validate(schema, document).length).toBeGreaterThan(0);
  });
});
