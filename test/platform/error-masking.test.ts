import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';

/**
 * SPEC §11: an unexpected error is logged with a request id and an errorId, and the client gets
 * INTERNAL_SERVER_ERROR with that errorId and nothing else: no stack, no SQL, no file path.
 * The failure is real: the user directory table the viewer path reads is dropped under the app.
 */

interface LogLine {
  level: number;
  msg: string;
  errorId?: string;
  requestId?: string;
  userId?: string | null;
  err?: { message?: string; stack?: string };
}

const logLines: LogLine[] = [];
let app: TestApp;

/** A pino logger writing JSON lines into `logLines`. */
function capturingLogger() {
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line));
      callback();
    },
  });
  return pino({ level: 'info' }, stream);
}

/** Things that must never reach a client: SQL, table names, driver words, stack frames, paths. */
const LEAKS = [
  /auth_users/i,
  /\bselect\b/i,
  /\bfrom\b/i,
  /relation/i,
  /does not exist/i,
  /\bat .+:\d+:\d+/,
  /\/work\//,
  /node_modules/,
  /\.ts\b/,
  /\.js\b/,
  /stack/i,
  /TableNotFound/i,
  /postgres/i,
];

beforeAll(async () => {
  app = await startTestApp({ label: 'platform-error-masking', logger: capturingLogger() });
});

afterAll(async () => {
  await app?.stop();
});

describe('unexpected errors', () => {
  it('a healthy viewer request works before the failure', async () => {
    const response = await app.gql(`{ viewer { userId name } }`, undefined, { token: app.userToken });
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ viewer: { userId: 'user-1', name: null } });
  });

  it('answer INTERNAL_SERVER_ERROR with an errorId, leak nothing, and log the errorId with the request id', async () => {
    await app.app.services.orm.em.fork().execute('drop table auth_users');

    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${app.userToken}`,
        'x-request-id': 'masking-test-request-1',
      },
      body: JSON.stringify({ query: '{ viewer { userId isAdmin name } }' }),
    });
    const text = await response.text();
    const body = JSON.parse(text) as {
      data: unknown;
      errors: { message: string; extensions: Record<string, unknown> }[];
    };

    expect(response.headers.get('x-request-id')).toBe('masking-test-request-1');
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    const [error] = body.errors;
    expect(error.extensions.code).toBe('INTERNAL_SERVER_ERROR');
    const errorId = error.extensions.errorId;
    expect(errorId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(error.extensions).sort()).toEqual(['code', 'errorId']);
    expect(error.message).toBe(`Internal server error (errorId ${errorId})`);
    for (const leak of LEAKS) expect(text).not.toMatch(leak);

    const logged = logLines.filter((line) => line.errorId === errorId);
    expect(logged).toHaveLength(1);
    expect(logged[0].level).toBe(50);
    expect(logged[0].requestId).toBe('masking-test-request-1');
    expect(logged[0].userId).toBe('user-1');
    // The log has what the response hides: the real cause, for the operator.
    expect(logged[0].err?.message).toMatch(/auth_users/);
  });

  it('give every failure its own errorId and a generated request id when none (or a bad one) is sent', async () => {
    const first = await app.gql(`{ viewer { name } }`, undefined, { token: app.userToken });
    const second = await app.gql(`{ viewer { name } }`, undefined, {
      token: app.userToken,
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    expect(errorCode(first)).toBe('INTERNAL_SERVER_ERROR');
    expect(errorCode(second)).toBe('INTERNAL_SERVER_ERROR');
    const firstId = first.errors?.[0]?.extensions?.errorId;
    const secondId = second.errors?.[0]?.extensions?.errorId;
    expect(firstId).not.toBe(secondId);

    const generated = second.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const logged = logLines.find((line) => line.errorId === secondId);
    expect(logged?.requestId).toBe(generated);
  });

  it('leave the fields that did not fail intact and answer domain errors as they are', async () => {
    const response = await app.gql(`{ health { status } viewer { name } }`, undefined, { token: app.userToken });
    // viewer is non-null, so its failure nulls the whole data; the error is still masked.
    expect(errorCode(response)).toBe('INTERNAL_SERVER_ERROR');
    const domain = await app.gql(`{ viewer { name } }`);
    expect(errorCode(domain)).toBe('UNAUTHENTICATED');
    expect(domain.errors?.[0]?.extensions?.errorId).toBeUndefined();
  });

  it('answer a GraphQL syntax or validation error as BAD_USER_INPUT without an errorId', async () => {
    const syntax = await app.gql('{ health { status }');
    expect(syntax.status).toBe(400);
    expect(errorCode(syntax)).toBe('BAD_USER_INPUT');
    expect(syntax.errors?.[0]?.extensions?.graphqlCode).toBe('GRAPHQL_PARSE_FAILED');
    const unknownField = await app.gql('{ health { nope } }');
    expect(unknownField.status).toBe(400);
    expect(errorCode(unknownField)).toBe('BAD_USER_INPUT');
    expect(unknownField.errors?.[0]?.extensions?.graphqlCode).toBe('GRAPHQL_VALIDATION_FAILED');
    const badVariable = await app.gql(
      'query Q($id: String!) { gatewayQuota(userId: $id) { userId } }',
      { id: 5 },
      {
        token: app.adminToken,
      },
    );
    expect(badVariable.status).toBe(400);
    expect(errorCode(badVariable)).toBe('BAD_USER_INPUT');
    expect(badVariable.errors?.[0]?.message).toMatch(/\$id/);
    expect(badVariable.errors?.[0]?.extensions?.errorId).toBeUndefined();
  });
});
