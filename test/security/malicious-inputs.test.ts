import { request as httpRequest } from 'node:http';
import {
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLSchema,
  getIntrospectionQuery,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import {
  codesOf,
  createFixture,
  EXPIRY,
  type Fixture,
  installWriteCounter,
  KNOWN_CODES,
  operationFor,
  ROOT_FIELDS,
  type RootKind,
  rootField,
  servedSchema,
  settleJobs,
  stateSnapshot,
  TABLE_CASES,
  type WireError,
  writeCount,
} from './security-support.js';

/**
 * Issue 6, security review by test: oversized and malicious input for every argument of every root
 * field, by the argument's type (String, ID, Int, Float amounts, DateTime, enums, Boolean, input
 * objects, lists), sent as variables and as literals in the document. Every answer has a code (or is
 * a 4xx for transport problems), none is INTERNAL_SERVER_ERROR, none hangs, and every refusal
 * changes nothing: no row written (a counting trigger on every table, cheap enough for about a
 * thousand calls) and the gateway simulator as it was. Then the transport itself: the
 * body cap, invalid UTF-8, deep nesting, 10,000 aliases; and a production configuration with
 * introspection and the playground off (extending test/platform/limits.test.ts, which checks the
 * defaults and the switches one by one).
 *
 * The argument list comes from the served schema and the baseline calls from the authorization
 * table, so a new argument is attacked without anyone adding it here.
 */

let app: TestApp;
let fx: Fixture;
let schema: GraphQLSchema;

beforeAll(async () => {
  app = await startTestApp({ label: 'security-inputs' });
  fx = await createFixture(app, 'inputs');
  schema = await servedSchema();
  await installWriteCounter(app);
});

afterAll(async () => {
  await app?.stop();
});

// ---------------------------------------------------------------------------------------------
// Requests

interface Answer {
  status: number;
  text: string;
  json: { data?: Record<string, unknown> | null; errors?: WireError[] } | null;
}

/** Every request is bounded: an answer that takes longer counts as a hang. */
const ANSWER_TIMEOUT_MS = 20_000;

async function post(body: string | Uint8Array, token: string | null): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${app.baseUrl}/graphql`, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
  });
  const text = await response.text();
  let json: Answer['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, text, json };
}

/** What is wrong with an answer as far as hygiene goes (codes, status), or null. */
function hygieneProblem(answer: Answer): string | null {
  if (answer.status >= 500) return `HTTP ${answer.status}`;
  if (!answer.json) return `HTTP ${answer.status}, not JSON: ${answer.text.slice(0, 100)}`;
  if (answer.status !== 200 && !answer.json.errors?.length) return `HTTP ${answer.status} without an error`;
  for (const error of answer.json.errors ?? []) {
    const code = error.extensions?.code;
    if (code === 'INTERNAL_SERVER_ERROR') return `INTERNAL_SERVER_ERROR: ${error.message}`;
    if (typeof code !== 'string' || !KNOWN_CODES.has(code)) return `error without a known code: ${error.message}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Values: plain JSON, raw JSON text (1e309, -0: JSON.stringify cannot write them), raw GraphQL literals

class Raw {
  constructor(
    readonly json: string | null,
    readonly literal: string | null,
  ) {}
}

interface Variant {
  label: string;
  value: unknown;
  /** When set, the call must be refused with this code (not merely "some code"). */
  refusedWith?: string;
}

const json = (label: string, value: unknown, refusedWith?: string): Variant => ({ label, value, refusedWith });
const rawJson = (text: string, refusedWith?: string): Variant => ({
  label: `JSON ${text}`,
  value: new Raw(text, null),
  refusedWith,
});
const literal = (text: string, refusedWith?: string): Variant => ({
  label: `literal ${text}`,
  value: new Raw(null, text),
  refusedWith,
});

const BAD = 'BAD_USER_INPUT';
/** About 1 MB of text: the biggest string that still fits the default body cap with its request. */
const HUGE_STRING = 'x'.repeat(990_000);

const TEXT_VARIANTS: Variant[] = [
  json('~1 MB', HUGE_STRING),
  json('empty', ''),
  json('NUL', 'a\u0000b', BAD),
  json('lone surrogate', 'a\ud800b', BAD),
  json('control, bidi and astral characters', '\u0001\u001b[2J\u007f\u0085\u202egnp.exe\u200b😀'),
  json('SQL and LIKE wildcards', "x%_\\' or '1'='1'; drop table quota; --"),
  json('an object', { $ne: null }, BAD),
  literal('"a\\u0000b"', BAD),
  literal('"a\\u{0}b"', BAD),
  literal('"\\ud800"', BAD),
];

const VARIANTS_BY_TYPE: Record<string, Variant[]> = {
  String: [...TEXT_VARIANTS, json('a number', 12, BAD)],
  ID: [...TEXT_VARIANTS, json('negative', '-1'), json('beyond bigint', '99999999999999999999999')],
  Int: [
    json('2^31 - 1', 2_147_483_647),
    json('-2^31', -2_147_483_648),
    json('-1', -1),
    rawJson('2147483648', BAD),
    rawJson('1.5', BAD),
    rawJson('"7"', BAD),
    literal('2147483648', BAD),
  ],
  Float: [
    rawJson('1e309', BAD),
    rawJson('-1e309', BAD),
    rawJson('"NaN"', BAD),
    rawJson('-0'),
    rawJson('0.001', BAD),
    rawJson('1e15', BAD),
    rawJson('123456789012.345', BAD),
    literal('1e309', BAD),
    literal('NaN', BAD),
    literal('-0.0'),
  ],
  Boolean: [json('"true"', 'true', BAD), json('1', 1, BAD)],
  DateTime: [
    json('far future, last second of 9999', '9999-12-31T23:59:59Z'),
    json('far past, first second of 0001', '0001-01-01T00:00:00Z'),
    json('an offset into the year 10000', '9999-12-31T23:59:59-14:00', BAD),
    json('an offset into the year 0', '0001-01-01T00:00:00+14:00', BAD),
    json('expanded year', '+275760-09-13T00:00:00Z', BAD),
    json('30 February', '2026-02-30T00:00:00Z', BAD),
    json('the largest JavaScript time', 8.64e15, BAD),
    literal('"9999-12-31T23:59:59-14:00"', BAD),
  ],
};

function enumVariants(values: string[]): Variant[] {
  return [
    json('unknown value', 'NOPE', BAD),
    json('lower case', values[0]!.toLowerCase(), BAD),
    json('a number', 1, BAD),
    literal('NOPE', BAD),
  ];
}

function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Stands for "the baseline object plus a field its type does not have". */
const EXTRA_FIELD = Symbol('extra field');

function objectVariants(): Variant[] {
  return [
    json('an unknown field', EXTRA_FIELD, BAD),
    json('a string instead', 'not an object', BAD),
    { label: 'nested 10,000 deep', value: new Raw(deepJson(10_000), null), refusedWith: BAD },
  ];
}

function listVariants(element: unknown): Variant[] {
  const size = Math.max(1, Math.min(100_000, Math.floor(900_000 / (JSON.stringify(element).length + 1))));
  return [
    json(
      `${size.toLocaleString('en')} elements`,
      Array.from({ length: size }, () => element),
    ),
    json('empty', []),
    json('a null element', [null]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Argument slots: every argument, every field of its input objects, every list's element

interface Slot {
  path: (string | number)[];
  type: GraphQLInputType;
}

function slotsOf(field: GraphQLField<unknown, unknown>): Slot[] {
  const slots: Slot[] = [];
  const walk = (type: GraphQLInputType, path: (string | number)[]) => {
    slots.push({ path, type });
    if (path.length > 8) return;
    const inner = getNullableType(type);
    if (isListType(inner)) walk(inner.ofType, [...path, 0]);
    else if (isInputObjectType(inner)) {
      for (const child of Object.values(inner.getFields())) walk(child.type, [...path, child.name]);
    }
  };
  for (const arg of field.args) walk(arg.type, [arg.name]);
  return slots;
}

/** A valid value of a type, for containers the baseline call leaves out. */
function sample(type: GraphQLInputType): unknown {
  const inner = getNullableType(type);
  if (isListType(inner)) return [sample(inner.ofType)];
  if (isInputObjectType(inner)) {
    const value: Record<string, unknown> = {};
    for (const child of Object.values(inner.getFields())) {
      if (isNonNullType(child.type) && child.defaultValue === undefined) value[child.name] = sample(child.type);
    }
    return value;
  }
  if (isEnumType(inner)) return inner.getValues()[0]!.name;
  const samples: Record<string, unknown> = { String: 'x', ID: '1', Int: 1, Float: 1, Boolean: true, DateTime: EXPIRY };
  return samples[inner.name] ?? null;
}

function variantsFor(slot: Slot, base: Record<string, unknown>): Variant[] {
  const inner = getNullableType(slot.type);
  if (isListType(inner)) return listVariants(valueAt(base, slot.path.concat(0)) ?? sample(inner.ofType));
  if (isInputObjectType(inner)) return objectVariants();
  if (isEnumType(inner)) return enumVariants(inner.getValues().map((value) => value.name));
  return VARIANTS_BY_TYPE[inner.name] ?? [];
}

function valueAt(value: unknown, path: (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[key];
  }
  return current;
}

/** The baseline arguments with one value replaced (containers on the way made when absent). */
function withValue(
  field: GraphQLField<unknown, unknown>,
  base: Record<string, unknown>,
  slot: Slot,
  value: unknown,
): Record<string, unknown> {
  const args = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  let container: Record<string | number, unknown> = args;
  let type: GraphQLInputType | null = null;
  for (const [index, key] of slot.path.entries()) {
    const inner: GraphQLInputType | null = type === null ? null : getNullableType(type as GraphQLInputType);
    let childType: GraphQLInputType;
    if (inner === null) childType = field.args.find((arg) => arg.name === key)!.type;
    else if (isListType(inner)) childType = inner.ofType;
    else if (isInputObjectType(inner)) childType = inner.getFields()[key as string]!.type;
    else childType = inner;
    if (index === slot.path.length - 1) {
      if (value === EXTRA_FIELD) container[key] = { ...((container[key] as object) ?? {}), unexpectedField: 1 };
      else container[key] = value;
      break;
    }
    if (container[key] === null || container[key] === undefined) container[key] = sample(childType);
    container = container[key] as Record<string | number, unknown>;
    type = childType;
  }
  return args;
}

/** A value as a GraphQL literal, typed by the schema (enums bare), raw literals as given. */
function printLiteral(value: unknown, type: GraphQLInputType): string {
  if (value instanceof Raw) return value.literal ?? 'null';
  if (value === null || value === undefined) return 'null';
  const inner = getNullableType(type);
  if (isListType(inner)) {
    const items = Array.isArray(value) ? value : [value];
    return `[${items.map((item) => printLiteral(item, inner.ofType)).join(', ')}]`;
  }
  if (isInputObjectType(inner) && typeof value === 'object') {
    const fields = inner.getFields();
    const entries = Object.entries(value as Record<string, unknown>).filter(([key]) => fields[key]);
    return `{ ${entries.map(([key, item]) => `${key}: ${printLiteral(item, fields[key]!.type)}`).join(', ')} }`;
  }
  if (isEnumType(inner) && typeof value === 'string') return value;
  return JSON.stringify(value);
}

const RAW_MARK = '@@raw@@';

/** The request body: variables (with raw JSON spliced in) or everything inline as literals. */
function bodyFor(kind: RootKind, name: string, select: string, args: Record<string, unknown>): string {
  const field = rootField(schema, kind, name);
  const raws: Raw[] = [];
  const collect = (value: unknown): void => {
    if (value instanceof Raw) raws.push(value);
    else if (value !== null && typeof value === 'object') for (const item of Object.values(value)) collect(item);
  };
  collect(args);
  if (raws.some((raw) => raw.literal !== null)) {
    const call = Object.entries(args)
      .map(([key, value]) => `${key}: ${printLiteral(value, field.args.find((arg) => arg.name === key)!.type)}`)
      .join(', ');
    return JSON.stringify({ query: `${kind} Security { ${name}${call ? `(${call})` : ''} ${select} }` });
  }
  const text = JSON.stringify(
    { query: operationFor(schema, kind, name, args, select), variables: args },
    (_key, value) => (value instanceof Raw ? RAW_MARK : value),
  );
  let next = 0;
  return text.replaceAll(`"${RAW_MARK}"`, () => raws[next++]!.json ?? 'null');
}

// ---------------------------------------------------------------------------------------------

describe('every argument of every root field, attacked by type', () => {
  it.each(TABLE_CASES)('$title', async ({ kind, name, spec }) => {
    const field = rootField(schema, kind, name);
    const token = spec.access === 'admin' ? fx.adminToken : fx.userToken;
    // The call itself is answered, so what the variants below get refused for is the attacked value.
    const baseline = await post(bodyFor(kind, name, spec.select, spec.args(fx)), token);
    expect(baseline.json?.errors, 'the unchanged call').toBeUndefined();
    await settleJobs(app);
    const problems: string[] = [];
    let before = await writeCount(app);
    for (const slot of slotsOf(field)) {
      for (const variant of variantsFor(slot, spec.args(fx))) {
        const label = `${slot.path.join('.')} = ${variant.label}`;
        const body = bodyFor(kind, name, spec.select, withValue(field, spec.args(fx), slot, variant.value));
        let answer: Answer;
        try {
          answer = await post(body, token);
        } catch (error) {
          problems.push(`${label}: no answer (${(error as Error).name})`);
          continue;
        }
        const problem = hygieneProblem(answer);
        if (problem) problems.push(`${label}: ${problem}`);
        const refused = (answer.json?.errors?.length ?? 0) > 0 && (answer.json?.data?.[name] ?? null) === null;
        if (variant.refusedWith && !(refused && codesOf(answer.json?.errors).includes(variant.refusedWith))) {
          problems.push(`${label}: expected ${variant.refusedWith}, got ${answer.text.slice(0, 160)}`);
        }
        if (refused) {
          const after = await writeCount(app);
          const changed = Object.keys(after).filter((key) => after[key] !== before[key]);
          if (changed.length > 0) problems.push(`${label}: refused, but changed ${changed.join(', ')}`);
          before = after;
        } else {
          await settleJobs(app);
          before = await writeCount(app);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('leaves the ledger invariants intact', async () => {
    await settleJobs(app);
    await assertLedgerInvariants(app.app.services.orm.em.fork(), app.simulator);
  });
});

describe('what gets through is what was sent', () => {
  it('control characters are text: a strategy title and a deduction reason keep them exactly', async () => {
    const text = 'tab\there\nnew line \u0001\u001b[31m red \u007f \u202e';
    const created = await app.gql<{ createStrategy: { id: string; title: string } }>(
      'mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id title } }',
      {
        input: { name: 'control-characters', title: text, type: 'SINGLE', amount: 1, condition: 'false()' },
      },
      { token: fx.adminToken },
    );
    expect(created.errors).toBeUndefined();
    const read = await app.gql<{ strategy: { title: string } }>(
      'query($id: ID!) { strategy(id: $id) { title } }',
      { id: created.data!.createStrategy.id },
      { token: fx.adminToken },
    );
    expect(read.data?.strategy.title).toBe(text);

    const deducted = await app.gql<{ deductQuota: { reason: string } }>(
      'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { reason } }',
      { input: { userId: fx.other, amount: 0.01, reason: text } },
      { token: fx.adminToken },
    );
    expect(deducted.errors).toBeUndefined();
    expect(deducted.data?.deductQuota.reason).toBe(text.trim());
  });

  it('-0 is zero: the gateway is sent "0", never "-0"', async () => {
    app.simulator.clearCalls();
    const response = await app.gql(
      'mutation($userId: String!) { setGatewayQuota(userId: $userId, counter: TOTAL, value: -0.0) { totalQuota } }',
      { userId: fx.gatewayOnly },
      { token: fx.adminToken },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ setGatewayQuota: { totalQuota: 0 } });
    expect(app.simulator.calls({ method: 'POST' }).map((call) => call.params.quota)).toEqual(['0']);
  });

  it('audits between the first second of 0001 and the last of 9999 are all the audits', async () => {
    const QUERY = `query($userId: String!, $filter: QuotaAuditFilter) {
      quotaAudits(userId: $userId, filter: $filter) { totalCount } }`;
    const count = async (filter: Record<string, string> | null) => {
      const response = await app.gql<{ quotaAudits: { totalCount: number } }>(
        QUERY,
        { userId: fx.other, filter },
        { token: fx.adminToken },
      );
      expect(response.errors).toBeUndefined();
      return response.data!.quotaAudits.totalCount;
    };
    const all = await count(null);
    expect(all).toBeGreaterThan(0);
    expect(await count({ from: '0001-01-01T00:00:00Z', to: '9999-12-31T23:59:59Z' })).toBe(all);
    expect(await count({ to: '9999-12-31T23:59:59.999Z' })).toBe(all);
    expect(await count({ from: '9999-12-31T23:59:59Z' })).toBe(0);
    expect(await count({ to: '0001-01-01T00:00:00Z' })).toBe(0);
  });

  it('a token whose user id PostgreSQL cannot store is UNAUTHENTICATED, not an internal error', async () => {
    for (const userId of ['nul\u0000id', 'lone\ud800surrogate']) {
      const token = await app.token({ userId });
      const response = await app.gql('{ myQuota { userId } }', {}, { token });
      expect(errorCode(response)).toBe('UNAUTHENTICATED');
      expect(response.errors?.[0]?.message).toMatch(/user id claim/);
    }
  });
});

describe('the transport', () => {
  const TRANSFER_IN = 'mutation($code: String!) { transferIn(voucherCode: $code) { status } }';

  it('a mutation body over the cap is 413 and changes nothing; one just under it is answered', async () => {
    const before = await stateSnapshot(app);
    const over = await post(
      JSON.stringify({ query: TRANSFER_IN, variables: { code: `${fx.voucherToUser}${'A'.repeat(1_000_000)}` } }),
      fx.userToken,
    );
    expect(over.status).toBe(413);
    expect(codesOf(over.json?.errors)).toEqual(['BAD_USER_INPUT']);
    const under = await post(
      JSON.stringify({ query: TRANSFER_IN, variables: { code: 'A'.repeat(999_000) } }),
      fx.userToken,
    );
    expect(under.status).toBe(200);
    expect(codesOf(under.json?.errors)).toEqual(['VOUCHER_INVALID']);
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it.each([
    ['a lone continuation byte', [0x80]],
    ['an overlong "/"', [0xc0, 0xaf]],
    ['a UTF-8-encoded surrogate', [0xed, 0xa0, 0x80]],
    ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['a truncated sequence', [0xe2, 0x82]],
    ['0xFF', [0xff]],
  ])('invalid UTF-8 in an argument (%s) is 400 and changes nothing', async (_label, bytes) => {
    const before = await stateSnapshot(app);
    const body = Buffer.concat([
      Buffer.from(
        JSON.stringify({
          query: 'mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode } }',
          variables: { input: { receiverId: 'MARK', items: [{ amount: 1, expiryDate: fx.expiry }] } },
        }).split('MARK')[0]!,
      ),
      Buffer.from(fx.other),
      Buffer.from(bytes),
      Buffer.from(`","items":[{"amount":1,"expiryDate":"${fx.expiry}"}]}}}`),
    ]);
    const answer = await post(body, fx.userToken);
    expect(answer.status).toBe(400);
    expect(answer.json?.errors?.[0]?.message).toMatch(/not valid UTF-8/);
    expect(codesOf(answer.json?.errors)).toEqual(['BAD_USER_INPUT']);
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it('deep nesting in the document or the variables is a 400 with a code, and the server carries on', async () => {
    const cases: [string, string | Uint8Array][] = [
      [
        'a list literal 3,000 deep',
        JSON.stringify({
          query: `mutation { setGatewayStarredProjects(employeeNumber: "E", projects: ${'['.repeat(3000)}"a"${']'.repeat(3000)}) { employeeNumber } }`,
        }),
      ],
      [
        'an object literal 2,000 deep',
        JSON.stringify({
          query: `mutation { deductQuota(input: ${'{a: '.repeat(2000)}1${'}'.repeat(2000)}) { id } }`,
        }),
      ],
      [
        'selection sets 2,000 deep',
        JSON.stringify({ query: `{ ${'health { '.repeat(2000)}status${' }'.repeat(2000)} }` }),
      ],
      [
        'an input object 100,000 deep in the variables',
        `{"query":"mutation($i: DeductQuotaInput!) { deductQuota(input: $i) { id } }","variables":{"i":${deepJson(100_000)}}}`,
      ],
      [
        'a list 100,000 deep in the variables',
        `{"query":"mutation($p: [String!]!) { setGatewayStarredProjects(employeeNumber: \\"E\\", projects: $p) { employeeNumber } }","variables":{"p":${'['.repeat(100_000)}"a"${']'.repeat(100_000)}}}`,
      ],
    ];
    const before = await stateSnapshot(app);
    for (const [label, body] of cases) {
      const answer = await post(body, fx.adminToken);
      expect(answer.status, label).toBe(400);
      expect(codesOf(answer.json?.errors), label).toContain('BAD_USER_INPUT');
      expect(hygieneProblem(answer), label).toBeNull();
    }
    expect(await stateSnapshot(app)).toEqual(before);
    const health = await app.gql<{ health: { status: string } }>('{ health { status } }');
    expect(health.data?.health.status).toBe('ok');
  });

  it('10,000 aliases of a mutation are refused before anything runs', async () => {
    app.simulator.clearCalls();
    const before = await stateSnapshot(app);
    const aliases = Array.from({ length: 10_000 }, (_, index) => `t${index}: transferOut(input: $i) { voucherCode }`);
    const answer = await post(
      JSON.stringify({
        query: `mutation($i: TransferOutInput!) { ${aliases.join(' ')} }`,
        variables: { i: { receiverId: fx.other, items: [{ amount: 0.01, expiryDate: fx.expiry }] } },
      }),
      fx.userToken,
    );
    expect(answer.status).toBe(400);
    expect(codesOf(answer.json?.errors)).toEqual(['BAD_USER_INPUT']);
    expect(answer.json?.data ?? null).toBeNull();
    expect(app.simulator.calls()).toEqual([]);
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it('the same through fragments: 10,000 spreads of one aliased fragment are refused too', async () => {
    const before = await stateSnapshot(app);
    const spreads = Array.from({ length: 10_000 }, () => '...F').join(' ');
    const answer = await post(
      JSON.stringify({
        query: `mutation { ${spreads} } fragment F on Mutation { t: triggerScan(type: SYNC_QUOTAS) { id } }`,
      }),
      fx.adminToken,
    );
    expect(answer.status).toBe(400);
    expect(codesOf(answer.json?.errors)).toEqual(['BAD_USER_INPUT']);
    expect(await stateSnapshot(app)).toEqual(before);
  });

  it('a chunked body that never ends within the cap is cut off at the cap with 413, not waited for', async () => {
    const url = new URL(`${app.baseUrl}/graphql`);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: '/graphql',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('error', () => undefined);
      req.setTimeout(ANSWER_TIMEOUT_MS, () => reject(new Error('no answer')));
      req.write('{"query":"{ __typename }","variables":{"p":"');
      // 1.1 MB in 64 KiB chunks, never closed: the server must answer without waiting for the end.
      const chunk = 'z'.repeat(65_536);
      for (let sent = 0; sent < 1_100_000; sent += chunk.length) req.write(chunk);
    });
    expect(status).toBe(413);
  });
});

describe('production: GRAPHQL_INTROSPECTION=false and GRAPHQL_PLAYGROUND=false', () => {
  let production: TestApp;

  beforeAll(async () => {
    production = await startTestApp({
      label: 'security-production',
      databaseUrl: app.databaseUrl,
      simulator: app.simulator,
      env: { GRAPHQL_INTROSPECTION: 'false', GRAPHQL_PLAYGROUND: 'false' },
    });
  });

  afterAll(async () => {
    await production?.stop();
  });

  it('refuses __schema and __type in every disguise, also for an administrator', async () => {
    const documents = [
      getIntrospectionQuery(),
      '{ __schema { types { name } } }',
      '{ renamed: __schema { queryType { name } } }',
      '{ ...Sneaky } fragment Sneaky on Query { __schema { mutationType { name } } }',
      '{ ... on Query { __type(name: "Mutation") { fields { name } } } }',
      '{ health { status } __type(name: "Query") { name } }',
    ];
    for (const query of documents) {
      for (const token of [null, production.adminToken]) {
        const response = await production.gql(query, {}, { token });
        expect(response.status, query).toBe(400);
        expect(errorCode(response), query).toBe('BAD_USER_INPUT');
        expect(response.errors?.[0]?.message, query).toMatch(/introspection/i);
        expect(response.data ?? null, query).toBeNull();
      }
    }
    // Over GET as well (with the CSRF preflight header a client would send).
    const get = await fetch(
      `${production.baseUrl}/graphql?query=${encodeURIComponent('{ __schema { queryType { name } } }')}`,
      { headers: { 'apollo-require-preflight': 'true', authorization: `Bearer ${production.adminToken}` } },
    );
    expect(get.status).toBe(400);
    expect(await get.text()).toMatch(/introspection/i);
  });

  it('still answers __typename (clients need it) and ordinary operations', async () => {
    const response = await production.gql<{ __typename: string; viewer: { __typename: string; userId: string } }>(
      '{ __typename viewer { __typename userId } }',
      {},
      { token: production.userToken },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ __typename: 'Query', viewer: { __typename: 'Viewer', userId: fx.user } });
  });

  it('serves no GraphiQL to a browser: not on /graphql, its variants, or its assets', async () => {
    const pages = ['/graphql', '/graphql/', `/graphql?token=${production.adminToken}`, '/graphql?query='];
    for (const path of pages) {
      for (const method of ['GET', 'HEAD']) {
        const response = await fetch(`${production.baseUrl}${path}`, {
          method,
          headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
        });
        const text = await response.text();
        expect(response.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
        expect(response.status, `${method} ${path}`).toBeLessThan(500);
        expect(response.headers.get('content-type') ?? '', `${method} ${path}`).not.toMatch(/text\/html/);
        expect(text, `${method} ${path}`).not.toMatch(/graphiql|<html/i);
      }
    }
    // Every asset the default server's page references is gone.
    const page = await (await fetch(`${app.baseUrl}/graphql`, { headers: { accept: 'text/html' } })).text();
    const assets = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      const response = await fetch(`${production.baseUrl}${asset}`);
      expect(response.status, asset).toBe(404);
      await response.text();
    }
  });

  it('the default server, for contrast, answers introspection and serves the page', async () => {
    const introspection = await app.gql('{ __schema { queryType { name } } }');
    expect(introspection.errors).toBeUndefined();
    const page = await fetch(`${app.baseUrl}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    await page.text();
  });
});

/** Fields whose table call was not attacked: none may be left out of the sweep. */
describe('the sweep covers the table', () => {
  it('attacks every argument of every field the table lists', () => {
    for (const { kind, name } of TABLE_CASES) {
      const field = rootField(schema, kind, name);
      for (const slot of slotsOf(field)) {
        expect(
          variantsFor(slot, ROOT_FIELDS[kind][name]!.args(fx)).length,
          `${name}.${slot.path.join('.')}`,
        ).toBeGreaterThan(0);
      }
    }
  });
});
