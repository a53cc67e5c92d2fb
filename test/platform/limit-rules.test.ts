import { ApolloServer } from '@apollo/server';
import { buildSchema, getIntrospectionQuery, parse, specifiedRules, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import type { GraphqlLimits } from '../../src/config.js';
import { complexityPlugin, MAX_EXPANDED_FIELDS, operationShapeRule } from '../../src/graphql/limits.js';

/**
 * The limit rules at their exact boundaries, on a small recursive schema (the API's own schema is
 * too shallow today to reach depth 10). The HTTP wiring is tested in limits.test.ts.
 */

const TYPE_DEFS = `
  type Query { node: Node, nodes(first: Int = 20): [Node!]! }
  type Node { name: String, child: Node, items(first: Int = 20): [Node!]! }
`;
const schema = buildSchema(TYPE_DEFS);

const LIMITS: GraphqlLimits = {
  maxDepth: 10,
  maxComplexity: 100,
  maxAliases: 30,
  maxRootFields: 20,
  introspection: true,
  playground: true,
  maxBodyBytes: 1_000_000,
};

function problems(query: string, limits: GraphqlLimits = LIMITS): string[] {
  return validate(schema, parse(query), [...specifiedRules, operationShapeRule(limits)]).map((error) => error.message);
}

/** `{ node { child { child … { name } } } }` with `depth` levels of fields in all. */
function nested(depth: number): string {
  let selection = 'name';
  for (let level = 2; level < depth; level += 1) selection = `child { ${selection} }`;
  return `{ node { ${selection} } }`;
}

describe('depth', () => {
  it('accepts exactly the limit and refuses one level more', () => {
    expect(problems(nested(10))).toEqual([]);
    expect(problems(nested(11))).toEqual(['The query is nested deeper than the limit of 10 levels.']);
  });

  it('counts levels inside fragments and inline fragments', () => {
    const viaFragments = `
      query { node { child { ...Three } } }
      fragment Three on Node { child { ... on Node { child { ...Rest } } } }
      fragment Rest on Node { child { child { child { child { child { name } } } } } }`;
    // node(1) child(2) child(3) child(4) child(5..9) name(10) = 10 levels
    expect(problems(viaFragments)).toEqual([]);
    const oneMore = viaFragments.replace('name', 'child { name }');
    expect(problems(oneMore)).toEqual(['The query is nested deeper than the limit of 10 levels.']);
  });

  it('does not hang on fragment cycles (graphql reports the cycle)', () => {
    const cyclic =
      'query { node { ...A } } fragment A on Node { child { ...B } } fragment B on Node { child { ...A } }';
    const reported = problems(cyclic);
    expect(reported.some((message) => /Cannot spread fragment "A" within itself/.test(message))).toBe(true);
  });

  it("does not count introspection at the root: GraphiQL's own query is deep", () => {
    const introspection =
      '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }';
    expect(problems(introspection, { ...LIMITS, maxDepth: 3 })).toEqual([]);
  });
});

describe('aliases and root fields', () => {
  const aliasList = (count: number, prefix = 'a') =>
    Array.from({ length: count }, (_, index) => `${prefix}${index}: name`).join(' ');

  it('accepts 30 aliases and refuses 31, also through fragments', () => {
    expect(problems(`{ node { ${aliasList(30)} } }`)).toEqual([]);
    expect(problems(`{ node { ${aliasList(31)} } }`)).toEqual(['The query uses more than 30 aliases.']);
    const split = `query { node { ${aliasList(16)} ...More } } fragment More on Node { ${aliasList(15, 'b')} }`;
    expect(problems(split)).toEqual(['The query uses more than 30 aliases.']);
  });

  it('counts a fragment spread once per spread', () => {
    const twice = `query { node { ...F child { ...F } } } fragment F on Node { ${aliasList(16)} }`;
    expect(problems(twice)).toEqual(['The query uses more than 30 aliases.']);
  });

  it('accepts 20 root fields and refuses 21', () => {
    const roots = (count: number) => Array.from({ length: count }, () => 'node { name }').join(' ');
    expect(problems(`{ ${roots(20)} }`)).toEqual([]);
    expect(problems(`{ ${roots(21)} }`)).toEqual(['The query asks for more than 20 top-level fields.']);
  });

  it('checks each operation of a document on its own', () => {
    const roots = Array.from({ length: 15 }, () => 'node { name }').join(' ');
    expect(problems(`query A { ${roots} } query B { ${roots} }`)).toEqual([]);
  });
});

describe('fragment expansion', () => {
  /** `{ node { ...F0 } }` where each of `links` fragments spreads the next twice: 1 + 2^(links−1) fields. */
  function doublingChain(links: number): string {
    const fragments = Array.from({ length: links }, (_, index) =>
      index === links - 1
        ? `fragment F${index} on Node { name }`
        : `fragment F${index} on Node { ...F${index + 1} ...F${index + 1} }`,
    );
    return `{ node { ...F0 } } ${fragments.join(' ')}`;
  }

  it(`accepts up to ${MAX_EXPANDED_FIELDS} expanded fields and refuses more`, () => {
    expect(MAX_EXPANDED_FIELDS).toBe(10_000);
    expect(problems(doublingChain(14))).toEqual([]); // 1 + 8,192
    expect(problems(doublingChain(15))).toEqual([
      'The query asks for more than 10000 fields once its fragments are expanded.',
    ]); // 1 + 16,384
  });

  it('measures each fragment once, so a chain of 60 links is refused without walking 2^59 fields', () => {
    expect(problems(doublingChain(60))).toEqual([
      'The query asks for more than 10000 fields once its fragments are expanded.',
    ]);
  });

  it("counts introspection towards the expansion, and accepts GraphiQL's own introspection query", () => {
    expect(problems(getIntrospectionQuery())).toEqual([]);
    const chain = doublingChain(15).replace('{ node { ...F0 } }', '{ __type(name: "Node") { name } node { ...F0 } }');
    expect(problems(chain)).toHaveLength(1);
    const hidden = `{ __schema { types { ...T0 } } } ${Array.from({ length: 15 }, (_, index) =>
      index === 14
        ? 'fragment T14 on __Type { name }'
        : `fragment T${index} on __Type { ...T${index + 1} ...T${index + 1} }`,
    ).join(' ')}`;
    expect(problems(hidden)).toEqual(['The query asks for more than 10000 fields once its fragments are expanded.']);
  });
});

describe('complexity', () => {
  async function complexityOf(query: string, maxComplexity: number, variables: Record<string, unknown> = {}) {
    const server = new ApolloServer({
      typeDefs: TYPE_DEFS,
      resolvers: { Query: { node: () => null, nodes: () => [] } },
      plugins: [complexityPlugin({ ...LIMITS, maxComplexity })],
    });
    await server.start();
    try {
      const response = await server.executeOperation({ query, variables });
      if (response.body.kind !== 'single') throw new Error('expected a single result');
      return { errors: response.body.singleResult.errors ?? [], status: response.http.status };
    } finally {
      await server.stop();
    }
  }

  it('costs a paged field its page size times its items', async () => {
    // nodes(first: 10) { name } = 1 + 10 × 1
    expect((await complexityOf('{ nodes(first: 10) { name } }', 11)).errors).toEqual([]);
    const over = await complexityOf('{ nodes(first: 10) { name } }', 10);
    expect(over.errors[0]?.message).toBe('The query is too expensive: complexity 11 exceeds the limit of 10.');
    expect(over.errors[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(over.status).toBe(400);
  });

  it('uses the default page size when first is omitted, and multiplies nested pages', async () => {
    expect((await complexityOf('{ nodes { name } }', 20)).errors[0]?.message).toMatch(/complexity 21 /);
    // 1 + 10 × (1 + 10 × 1) = 111
    const nestedPages = await complexityOf('{ nodes(first: 10) { items(first: 10) { name } } }', 110);
    expect(nestedPages.errors[0]?.message).toMatch(/complexity 111 /);
  });

  it('costs an explicit first: null as the default page it is served', async () => {
    expect((await complexityOf('{ nodes(first: null) { name } }', 20)).errors[0]?.message).toMatch(/complexity 21 /);
    expect((await complexityOf('{ nodes(first: null) { name } }', 21)).errors).toEqual([]);
  });

  it('reads first from variables', async () => {
    const query = 'query Q($n: Int) { nodes(first: $n) { name } }';
    expect((await complexityOf(query, 50, { n: 49 })).errors).toEqual([]);
    expect((await complexityOf(query, 50, { n: 50 })).errors[0]?.message).toMatch(/complexity 51 /);
  });

  it('leaves variables of the wrong type to execution (a user error, not a crash)', async () => {
    const result = await complexityOf('query Q($n: Int) { nodes(first: $n) { name } }', 50, { n: 'many' });
    expect(result.errors[0]?.message).toMatch(/\$n/);
    expect(result.errors[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(result.status).toBe(400);
  });

  it('costs each operation of a document, and each request with variables, on its own (one server, repeated)', async () => {
    // One server, so the second request of a query text gets the document Apollo stored for the first:
    // a cost remembered per document must still tell its operations and its variables apart.
    const server = new ApolloServer({
      typeDefs: TYPE_DEFS,
      resolvers: { Query: { node: () => null, nodes: () => [] } },
      plugins: [complexityPlugin({ ...LIMITS, maxComplexity: 5 })],
    });
    await server.start();
    try {
      const codeOf = async (query: string, operationName?: string, variables?: Record<string, unknown>) => {
        const response = await server.executeOperation({ query, operationName, variables });
        if (response.body.kind !== 'single') throw new Error('expected a single result');
        return response.body.singleResult.errors?.[0]?.message ?? 'accepted';
      };
      const twoOperations = 'query Cheap { node { name } } query Dear { nodes(first: 10) { name } }';
      for (let round = 0; round < 2; round++) {
        expect(await codeOf(twoOperations, 'Cheap')).toBe('accepted');
        expect(await codeOf(twoOperations, 'Dear')).toMatch(/complexity 11 /);
      }
      const paged = 'query Q($n: Int) { nodes(first: $n) { name } }';
      expect(await codeOf(paged, undefined, { n: 2 })).toBe('accepted');
      expect(await codeOf(paged, undefined, { n: 9 })).toMatch(/complexity 10 /);
      expect(await codeOf(paged, undefined, { n: 2 })).toBe('accepted');
    } finally {
      await server.stop();
    }
  });

  it('does not charge introspection', async () => {
    const result = await complexityOf('{ __schema { types { name fields { name } } } }', 1);
    expect(result.errors).toEqual([]);
  });
});
