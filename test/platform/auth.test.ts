import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../../src/modules/auth/token-verifier.js';
import { errorCode, type GraphqlResponse, startTestApp, TEST_JWT_SECRET, type TestApp } from '../support/app.js';

/**
 * SPEC §1 over real HTTP: every way a token can be good or bad, on an [admin] operation
 * (`gatewayQuota`), a [user] operation (`viewer`) and the public `health`.
 */

const ADMIN_OPERATION = '{ gatewayQuota(userId: "x") { userId totalQuota usedQuota } }';
const USER_OPERATION = '{ viewer { userId isAdmin name } }';
const PUBLIC_OPERATION = '{ health { status database version } }';
const LISTED_ADMIN = 'listed-admin';

type Viewer = { userId: string; isAdmin: boolean; name: string | null };
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

const nowSeconds = () => Math.floor(Date.now() / 1000);

interface SignOptions {
  secret?: string | Uint8Array;
  alg?: string;
  /** Seconds from now; null = no exp claim. */
  expiresIn?: number | null;
  /** Seconds from now. */
  notBefore?: number;
  kid?: string;
}

/** Builds a token the way an identity provider would, with full control of the claims. */
async function sign(claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const key =
    options.secret instanceof Uint8Array ? options.secret : new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET);
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT', ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuedAt();
  const expiresIn = options.expiresIn === undefined ? 3600 : options.expiresIn;
  if (expiresIn !== null) jwt.setExpirationTime(nowSeconds() + expiresIn);
  if (options.notBefore !== undefined) jwt.setNotBefore(nowSeconds() + options.notBefore);
  return jwt.sign(key);
}

/** An unsigned token (`alg: none`), built by hand: jose refuses to make one. */
function unsignedToken(claims: JWTPayload): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ exp: nowSeconds() + 3600, ...claims })}.`;
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

async function viewerOf(app: TestApp, headers: Record<string, string>): Promise<Viewer> {
  const response = await app.gql<{ viewer: Viewer }>(USER_OPERATION, undefined, { headers });
  expect(response.errors).toBeUndefined();
  return response.data!.viewer;
}

/** Calls made to the gateway for the admin operation's user "x" (the health probe uses another id). */
function gatewayCallsForX(app: TestApp): number {
  return app.simulator.calls().filter((call) => call.params.user_id === 'x').length;
}

function expectUnauthenticated(response: GraphqlResponse, reason?: RegExp): void {
  expect(errorCode(response)).toBe('UNAUTHENTICATED');
  expect(response.data).toBeNull();
  if (reason) expect(response.errors?.[0]?.message).toMatch(reason);
}

/** A refused token: both guarded operations answer UNAUTHENTICATED with the reason; health still answers. */
async function expectRefused(app: TestApp, headers: Record<string, string>, reason?: RegExp): Promise<void> {
  const before = gatewayCallsForX(app);
  expectUnauthenticated(await app.gql(USER_OPERATION, undefined, { headers }), reason);
  expectUnauthenticated(await app.gql(ADMIN_OPERATION, undefined, { headers }), reason);
  expect(gatewayCallsForX(app)).toBe(before);
  const health = await app.gql<{ health: { status: string } }>(PUBLIC_OPERATION, undefined, { headers });
  expect(health.errors).toBeUndefined();
  expect(health.data?.health.status).toBe('ok');
}

/** An accepted user (not admin): viewer answers, the admin operation is FORBIDDEN. */
async function expectUser(app: TestApp, headers: Record<string, string>, userId: string): Promise<void> {
  expect(await viewerOf(app, headers)).toMatchObject({ userId, isAdmin: false });
  const before = gatewayCallsForX(app);
  const admin = await app.gql(ADMIN_OPERATION, undefined, { headers });
  expect(errorCode(admin)).toBe('FORBIDDEN');
  expect(admin.data).toBeNull();
  expect(gatewayCallsForX(app)).toBe(before);
}

/** An accepted administrator: both operations answer. */
async function expectAdmin(app: TestApp, headers: Record<string, string>, userId: string): Promise<void> {
  expect(await viewerOf(app, headers)).toMatchObject({ userId, isAdmin: true });
  const admin = await app.gql<{ gatewayQuota: { userId: string } }>(ADMIN_OPERATION, undefined, { headers });
  expect(admin.errors).toBeUndefined();
  expect(admin.data?.gatewayQuota).toEqual({ userId: 'x', totalQuota: 0, usedQuota: 0 });
}

let hsApp: TestApp;

beforeAll(async () => {
  hsApp = await startTestApp({ label: 'platform-auth', env: { AUTH_ADMIN_USER_IDS: `someone,${LISTED_ADMIN}` } });
  await hsApp.app.services.orm.em
    .fork()
    .execute(
      "insert into auth_users (id, name) values ('dir-user', 'Directory Name'), ('nameless', null), ('claim-user', 'Directory Other')",
    );
});

afterAll(async () => {
  await hsApp?.stop();
});

describe('HS256 with AUTH_JWT_SECRET', () => {
  it('anonymous: UNAUTHENTICATED on [user] and [admin], health answers', async () => {
    await expectRefused(hsApp, {}, /a token is required/);
    await expectRefused(hsApp, { authorization: '' });
    await expectRefused(hsApp, { authorization: 'Bearer ' });
  });

  it('a valid user token: viewer answers, an admin operation is FORBIDDEN', async () => {
    await expectUser(hsApp, bearer(hsApp.userToken), 'user-1');
  });

  it('a valid admin token (role admin) may use admin operations', async () => {
    await expectAdmin(hsApp, bearer(hsApp.adminToken), 'admin-1');
    await expectAdmin(hsApp, bearer(await sign({ universal_id: 'r1', role: 'admin' })), 'r1');
  });

  it('roles ["admin"] makes an administrator', async () => {
    await expectAdmin(hsApp, bearer(await sign({ universal_id: 'r2', roles: ['viewer', 'admin'] })), 'r2');
  });

  it('a user id listed in AUTH_ADMIN_USER_IDS is an administrator without a role claim', async () => {
    await expectAdmin(hsApp, bearer(await sign({ universal_id: LISTED_ADMIN })), LISTED_ADMIN);
  });

  it('other roles do not make an administrator', async () => {
    await expectUser(hsApp, bearer(await sign({ universal_id: 'r3', role: 'user' })), 'r3');
    await expectUser(hsApp, bearer(await sign({ universal_id: 'r4', role: 'Admin' })), 'r4');
    await expectUser(hsApp, bearer(await sign({ universal_id: 'r5', roles: ['user', 'superuser'] })), 'r5');
    await expectUser(hsApp, bearer(await sign({ universal_id: 'r6', roles: 'admin' })), 'r6');
    // An admin-looking claim for someone else does not lend its power.
    await expectUser(hsApp, bearer(await sign({ universal_id: 'r7', sub: LISTED_ADMIN })), 'r7');
  });

  it('an expired token is refused; one expired within the 30 s tolerance is accepted', async () => {
    await expectRefused(
      hsApp,
      bearer(await sign({ universal_id: 'late', role: 'admin' }, { expiresIn: -60 })),
      /expired/,
    );
    await expectAdmin(hsApp, bearer(await sign({ universal_id: 'late', role: 'admin' }, { expiresIn: -10 })), 'late');
  });

  it('a signed token without exp is refused, an admin one too: it would be good forever', async () => {
    await expectRefused(
      hsApp,
      bearer(await sign({ universal_id: 'forever', role: 'admin' }, { expiresIn: null })),
      /the token has no expiry \(exp claim\)/,
    );
  });

  it('a token not yet valid (nbf) is refused; within the tolerance it is accepted', async () => {
    await expectRefused(hsApp, bearer(await sign({ universal_id: 'early' }, { notBefore: 120 })), /not valid yet/);
    await expectUser(hsApp, bearer(await sign({ universal_id: 'early' }, { notBefore: 10 })), 'early');
  });

  it('a token signed with another secret is refused', async () => {
    const forged = await sign(
      { universal_id: 'admin-1', role: 'admin' },
      { secret: 'another-secret-that-is-32-bytes-long!' },
    );
    await expectRefused(hsApp, bearer(forged), /signature/);
  });

  it('a token with a tampered payload is refused', async () => {
    const [header, , signature] = hsApp.userToken.split('.');
    const payload = Buffer.from(JSON.stringify({ universal_id: 'user-1', role: 'admin', exp: nowSeconds() + 60 }));
    await expectRefused(hsApp, bearer(`${header}.${payload.toString('base64url')}.${signature}`), /signature/);
  });

  it('alg: none is refused', async () => {
    await expectRefused(hsApp, bearer(unsignedToken({ universal_id: 'admin-1', role: 'admin' })));
  });

  it('an HS384 token (not on the allow-list) is refused', async () => {
    await expectRefused(hsApp, bearer(await sign({ universal_id: 'u' }, { alg: 'HS384' })), /algorithm/);
  });

  it('an RS256 token is refused when only HS256 is allowed', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const token = await new SignJWT({ universal_id: 'admin-1', role: 'admin' })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('1h')
      .sign(privateKey);
    await expectRefused(hsApp, bearer(token), /algorithm/);
  });

  it('a token without universal_id and sub is refused', async () => {
    await expectRefused(hsApp, bearer(await sign({ name: 'Nobody', role: 'admin' })), /universal_id or sub/);
    await expectRefused(hsApp, bearer(await sign({ universal_id: '  ', sub: '' })), /universal_id or sub/);
  });

  it('sub is the fallback for the user id; universal_id wins when both are present', async () => {
    await expectUser(hsApp, bearer(await sign({ sub: 'sub-only' })), 'sub-only');
    await expectUser(
      hsApp,
      bearer(await sign({ universal_id: 'the-universal-id', sub: 'the-sub' })),
      'the-universal-id',
    );
  });

  it('garbage is refused', async () => {
    await expectRefused(hsApp, bearer('garbage'), /malformed/);
    await expectRefused(hsApp, bearer('a.b.c'));
    await expectRefused(hsApp, { authorization: 'Basic dXNlcjpwYXNz' });
    await expectRefused(hsApp, bearer('x'.repeat(12_000)), /malformed/);
  });

  it('refuses an over-long token before decoding it (behind a proxy that allows large headers)', async () => {
    // Node's own 16 KiB header limit answers 431 first on a direct connection, so ask the verifier.
    const verifier = new TokenVerifier(hsApp.config.auth);
    const huge = `${hsApp.userToken}.${'x'.repeat(20_000)}`;
    expect(await verifier.authenticate(`Bearer ${huge}`)).toEqual({ kind: 'refused', reason: 'the token is too long' });
    const response = await fetch(`${hsApp.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${huge}` },
      body: JSON.stringify({ query: USER_OPERATION }),
    });
    expect(response.status).toBe(431);
  });

  describe('the verified-token memory', () => {
    async function tokenExpiringIn(seconds: number, userId = 'cache-user'): Promise<string> {
      return new SignJWT({ universal_id: userId })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + seconds)
        .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    }

    it('a remembered token still expires: refused once exp (plus tolerance) has passed', async () => {
      let now = Date.now();
      const verifier = new TokenVerifier(hsApp.config.auth, undefined, { now: () => now });
      const token = await tokenExpiringIn(60);
      expect(await verifier.authenticate(`Bearer ${token}`)).toMatchObject({ kind: 'viewer' });
      expect(verifier.rememberedTokens).toBe(1);
      now += 60_000 + 31_000;
      expect(await verifier.authenticate(`Bearer ${token}`)).toEqual({
        kind: 'refused',
        reason: 'the token has expired',
      });
      expect(verifier.rememberedTokens).toBe(0);
    });

    it('remembers only verified tokens: a forged one is refused every time and never kept', async () => {
      const verifier = new TokenVerifier(hsApp.config.auth);
      // With an expiry, so that only the signature can be what refuses it (without one it would be
      // refused for the missing exp claim even if signatures were never checked).
      const forged = await new SignJWT({ universal_id: 'forger' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode('another-secret-that-is-also-32-bytes-long'));
      for (let attempt = 0; attempt < 2; attempt++) {
        expect(await verifier.authenticate(`Bearer ${forged}`)).toEqual({
          kind: 'refused',
          reason: 'the token signature is invalid',
        });
      }
      expect(verifier.rememberedTokens).toBe(0);
      // A remembered valid token with one signature character changed is another text, checked afresh.
      // The second-to-last character is all signature bits (the last one carries padding bits too).
      const valid = await tokenExpiringIn(600);
      expect(await verifier.authenticate(`Bearer ${valid}`)).toMatchObject({ kind: 'viewer' });
      const flipped = `${valid.slice(0, -2)}${valid.at(-2) === 'A' ? 'B' : 'A'}${valid.slice(-1)}`;
      expect(flipped).not.toBe(valid);
      expect(await verifier.authenticate(`Bearer ${flipped}`)).toEqual({
        kind: 'refused',
        reason: 'the token signature is invalid',
      });
    });

    it('keeps at most 10,000 tokens, dropping the oldest', async () => {
      const verifier = new TokenVerifier(hsApp.config.auth);
      const secret = new TextEncoder().encode(TEST_JWT_SECRET);
      const tokens = await Promise.all(
        Array.from({ length: 10_005 }, (_, index) =>
          new SignJWT({ universal_id: `many-${index}` })
            .setProtectedHeader({ alg: 'HS256' })
            .setExpirationTime('1h')
            .sign(secret),
        ),
      );
      for (const token of tokens) await verifier.authenticate(`Bearer ${token}`);
      expect(verifier.rememberedTokens).toBe(10_000);
    });
  });

  it('the token is accepted with and without "Bearer "', async () => {
    await expectUser(hsApp, { authorization: hsApp.userToken }, 'user-1');
    await expectUser(hsApp, { authorization: `bearer ${hsApp.userToken}` }, 'user-1');
    await expectUser(hsApp, { authorization: `  Bearer   ${hsApp.userToken}  ` }, 'user-1');
  });

  it('viewer.name is the name claim, else the directory name, else null', async () => {
    const claimed = await viewerOf(hsApp, bearer(await sign({ universal_id: 'claim-user', name: 'Claimed Name' })));
    expect(claimed.name).toBe('Claimed Name');
    const fromDirectory = await viewerOf(hsApp, bearer(await sign({ universal_id: 'dir-user' })));
    expect(fromDirectory.name).toBe('Directory Name');
    const nullInDirectory = await viewerOf(hsApp, bearer(await sign({ universal_id: 'nameless' })));
    expect(nullInDirectory.name).toBeNull();
    const unknown = await viewerOf(hsApp, bearer(await sign({ universal_id: 'not-in-directory' })));
    expect(unknown).toEqual({ userId: 'not-in-directory', isAdmin: false, name: null });
  });

  it('a refusal never echoes the token or the secret', async () => {
    const forged = await sign({ universal_id: 'u' }, { secret: 'another-secret-that-is-32-bytes-long!' });
    const response = await hsApp.gql(USER_OPERATION, undefined, { headers: bearer(forged) });
    const text = JSON.stringify(response.errors);
    expect(text).not.toContain(forged);
    expect(text).not.toContain(TEST_JWT_SECRET);
  });
});

describe('RS256 through a JWKS (AUTH_JWKS_URL)', () => {
  let jwksServer: Server;
  let jwksApp: TestApp;
  let privateKey: PrivateKey;
  let publicKeyPem: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    privateKey = pair.privateKey;
    publicKeyPem = await exportSPKI(pair.publicKey);
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const { port } = jwksServer.address() as AddressInfo;
    jwksApp = await startTestApp({
      label: 'platform-auth-jwks',
      databaseUrl: hsApp.databaseUrl,
      env: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` },
    });
  });

  afterAll(async () => {
    await jwksApp?.stop();
    await new Promise<void>((resolve) => jwksServer?.close(() => resolve()));
  });

  const signRs = (claims: JWTPayload, key: PrivateKey = privateKey, expiresIn = 3600) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .setExpirationTime(nowSeconds() + expiresIn)
      .sign(key);

  it('accepts an RS256 token signed by a key of the set', async () => {
    await expectUser(jwksApp, bearer(await signRs({ universal_id: 'rs-user' })), 'rs-user');
    await expectAdmin(jwksApp, bearer(await signRs({ universal_id: 'rs-admin', role: 'admin' })), 'rs-admin');
  });

  it('refuses an RS256 token signed by a key outside the set', async () => {
    const stranger = await generateKeyPair('RS256');
    await expectRefused(
      jwksApp,
      bearer(await signRs({ universal_id: 'rs-admin', role: 'admin' }, stranger.privateKey)),
    );
  });

  it('refuses an expired RS256 token', async () => {
    await expectRefused(jwksApp, bearer(await signRs({ universal_id: 'rs-user' }, privateKey, -120)), /expired/);
  });

  it('refuses an RS256 token without exp', async () => {
    const forever = await new SignJWT({ universal_id: 'rs-user' })
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .sign(privateKey);
    await expectRefused(jwksApp, bearer(forever), /no expiry/);
  });

  it('refuses HS/RS confusion: HS256 signed with the public key PEM as the HMAC secret', async () => {
    const confused = await sign(
      { universal_id: 'rs-admin', role: 'admin' },
      { secret: new TextEncoder().encode(publicKeyPem), kid: 'key-1' },
    );
    await expectRefused(jwksApp, bearer(confused), /algorithm/);
  });

  it('refuses HS256 tokens of the test secret and alg: none', async () => {
    await expectRefused(jwksApp, bearer(jwksApp.adminToken), /algorithm/);
    await expectRefused(jwksApp, bearer(unsignedToken({ universal_id: 'rs-admin', role: 'admin' })));
  });
});

describe('a JWKS that cannot be fetched', () => {
  let brokenServer: Server;
  let brokenApp: TestApp;
  let privateKey: PrivateKey;
  const warnings: string[] = [];

  beforeAll(async () => {
    privateKey = (await generateKeyPair('RS256')).privateKey;
    brokenServer = createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('identity provider is down');
    });
    await new Promise<void>((resolve) => brokenServer.listen(0, '127.0.0.1', resolve));
    const { port } = brokenServer.address() as AddressInfo;
    brokenApp = await startTestApp({
      label: 'platform-auth-jwks-down',
      databaseUrl: hsApp.databaseUrl,
      env: { AUTH_JWT_SECRET: '', AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` },
      logger: pino(
        { level: 'warn' },
        new Writable({
          write(chunk, _encoding, callback) {
            warnings.push(String(chunk));
            callback();
          },
        }),
      ),
    });
  });

  afterAll(async () => {
    await brokenApp?.stop();
    await new Promise<void>((resolve) => brokenServer?.close(() => resolve()));
  });

  const rsToken = () =>
    new SignJWT({ universal_id: 'rs-user' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k' })
      .setExpirationTime('1h')
      .sign(privateKey);

  it('answers UNAUTHENTICATED (not an internal error) when the key set answers an error', async () => {
    await expectRefused(brokenApp, bearer(await rsToken()), /key set could not be fetched/);
    // The operator learns about it; the client is not told the token is malformed.
    expect(warnings.some((line) => /JSON Web Key Set could not be fetched/.test(line))).toBe(true);
  });

  it('answers UNAUTHENTICATED when the key set is unreachable', async () => {
    await new Promise<void>((resolve) => brokenServer.close(() => resolve()));
    await expectRefused(brokenApp, bearer(await rsToken()), /key set could not be fetched/);
  });
});

describe('a custom AUTH_TOKEN_HEADER', () => {
  let headerApp: TestApp;

  beforeAll(async () => {
    headerApp = await startTestApp({
      label: 'platform-auth-header',
      databaseUrl: hsApp.databaseUrl,
      env: { AUTH_TOKEN_HEADER: 'X-Auth-Token' },
    });
  });

  afterAll(async () => {
    await headerApp?.stop();
  });

  it('reads the token from the configured header, with or without Bearer', async () => {
    await expectUser(headerApp, { 'x-auth-token': headerApp.userToken }, 'user-1');
    await expectAdmin(headerApp, { 'x-auth-token': `Bearer ${headerApp.adminToken}` }, 'admin-1');
  });

  it('ignores the authorization header', async () => {
    await expectRefused(headerApp, bearer(headerApp.adminToken), /a token is required/);
  });

  it('refuses a bad token in the configured header', async () => {
    await expectRefused(headerApp, { 'x-auth-token': 'garbage' }, /malformed/);
  });
});

describe('AUTH_VERIFY=false (decode only)', () => {
  let decodeApp: TestApp;

  beforeAll(async () => {
    decodeApp = await startTestApp({
      label: 'platform-auth-decode',
      databaseUrl: hsApp.databaseUrl,
      env: { AUTH_VERIFY: 'false', AUTH_JWT_SECRET: '' },
    });
  });

  afterAll(async () => {
    await decodeApp?.stop();
  });

  it('accepts a token signed with a secret it does not know, with its claims', async () => {
    const foreign = { secret: 'some-upstream-secret-nobody-told-us!!' };
    await expectUser(decodeApp, bearer(await sign({ universal_id: 'up-user' }, foreign)), 'up-user');
    await expectAdmin(decodeApp, bearer(await sign({ universal_id: 'up-admin', role: 'admin' }, foreign)), 'up-admin');
  });

  it('still refuses expired and not-yet-valid tokens, and garbage', async () => {
    await expectRefused(decodeApp, bearer(await sign({ universal_id: 'up-user' }, { expiresIn: -60 })), /expired/);
    await expectUser(decodeApp, bearer(await sign({ universal_id: 'up-user' }, { expiresIn: -10 })), 'up-user');
    await expectRefused(
      decodeApp,
      bearer(await sign({ universal_id: 'up-user' }, { notBefore: 120 })),
      /not valid yet/,
    );
    await expectRefused(decodeApp, bearer('garbage'), /malformed/);
    // Whoever verified it upstream decides whether a token must expire: decode-only does not ask for exp.
    await expectUser(decodeApp, bearer(await sign({ universal_id: 'up-user' }, { expiresIn: null })), 'up-user');
    await expectRefused(decodeApp, bearer(await sign({ name: 'no id' })), /universal_id or sub/);
  });

  it('refuses anonymous calls', async () => {
    await expectRefused(decodeApp, {}, /a token is required/);
  });
});
