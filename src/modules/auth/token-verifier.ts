import {
  createRemoteJWKSet,
  decodeJwt,
  type JWTPayload,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
} from 'jose';
import type { AuthConfig } from '../../config.js';
import { DomainError, ErrorCode } from '../../errors.js';
import { unstorableText } from '../../graphql/text-input.js';
import type { Logger } from '../../logger.js';

/** Who is calling: derived from a token, never from anything else the client sends. */
export interface Viewer {
  userId: string;
  isAdmin: boolean;
  /** Display claims for voucher giver fields and `viewer.name`. */
  name: string | null;
  phone: string | null;
  github: string | null;
}

/** The outcome of reading a request's credentials: a viewer, nobody, or why the token was refused. */
export type Authentication =
  | { kind: 'viewer'; viewer: Viewer }
  | { kind: 'anonymous' }
  | { kind: 'refused'; reason: string };

const MAX_TOKEN_LENGTH = 16_384;
/** Verified tokens remembered at most (about 1 KB each, so a few MB at worst). */
const VERIFIED_TOKEN_CACHE_SIZE = 10_000;
/** How long a verified token is trusted without checking its signature again. */
const VERIFIED_TOKEN_TTL_MS = 5 * 60_000;

/**
 * Verifies JWTs per SPEC §1 with jose: HS256 secret or a JWKS URL, an explicit algorithm
 * allow-list (so `alg: none` and HS/RS confusion are refused), exp required, exp/nbf with a clock tolerance.
 * With `verify: false` it only decodes (the token was verified upstream), still honouring exp/nbf.
 */
export class TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey | null;
  /**
   * Tokens whose signature was verified, by their exact text (signature included): a client sends
   * the same token with every request, and the signature check was a twentieth of a transfer's CPU.
   * A hit still honours `exp`; entries live at most VERIFIED_TOKEN_TTL_MS (so a key withdrawn from
   * a JWKS stops working within that time) and the oldest go first beyond VERIFIED_TOKEN_CACHE_SIZE.
   */
  private readonly verified = new Map<string, { claims: JWTPayload; until: number }>();
  private readonly now: () => number;

  constructor(
    private readonly config: AuthConfig & { jwtSecret: string | null },
    private readonly logger?: Logger,
    options: { now?: () => number } = {},
  ) {
    this.now = options.now ?? Date.now;
    if (!config.verify) this.key = null;
    else if (config.jwksUrl) this.key = this.keySetGetter(config.jwksUrl);
    else if (config.jwtSecret) this.key = new TextEncoder().encode(config.jwtSecret);
    else throw new Error('TokenVerifier needs AUTH_JWT_SECRET or AUTH_JWKS_URL when verifying');
  }

  /** Reads the configured header; `Bearer ` is optional. */
  async authenticate(headerValue: string | undefined): Promise<Authentication> {
    const token = extractToken(headerValue);
    if (token === null) return { kind: 'anonymous' };
    try {
      const claims = await this.verify(token);
      return { kind: 'viewer', viewer: this.viewerFrom(claims) };
    } catch (error) {
      return { kind: 'refused', reason: describeTokenError(error) };
    }
  }

  /**
   * The remote key set, with its failures told apart: a kid the set does not have is the token's
   * problem; a set that cannot be fetched or read (identity provider down, an error page, a
   * timeout) is ours, so it is logged for the operator and not reported as a malformed token.
   */
  private keySetGetter(jwksUrl: string): JWTVerifyGetKey {
    const remote = createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 5_000 });
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (error) {
        if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
          throw error;
        }
        this.logger?.warn({ err: error, jwksUrl }, 'the JSON Web Key Set could not be fetched');
        throw new KeySetUnavailable();
      }
    };
  }

  private async verify(token: string): Promise<JWTPayload> {
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenProblem('the token is too long');
    const tolerance = this.config.clockToleranceSeconds;
    if (this.key === null) {
      const claims = decodeJwt(token);
      const now = Math.floor(this.now() / 1000);
      if (typeof claims.exp === 'number' && claims.exp + tolerance <= now)
        throw new TokenProblem('the token has expired');
      if (typeof claims.nbf === 'number' && claims.nbf - tolerance > now)
        throw new TokenProblem('the token is not valid yet');
      return claims;
    }
    const cached = this.verified.get(token);
    if (cached) {
      const nowMs = this.now();
      const expired = typeof cached.claims.exp === 'number' && (cached.claims.exp + tolerance) * 1000 <= nowMs;
      if (!expired && nowMs < cached.until) return cached.claims;
      this.verified.delete(token);
    }
    const options = {
      algorithms: this.config.algorithms,
      // A signed token without exp would be good forever, an admin's too: refused. (Decode-only mode
      // trusts whoever verified the token upstream, so it leaves that rule to them.)
      requiredClaims: ['exp'],
      clockTolerance: tolerance,
      currentDate: new Date(this.now()),
    };
    const result =
      this.key instanceof Uint8Array
        ? await jwtVerify(token, this.key, options)
        : await jwtVerify(token, this.key, options);
    this.remember(token, result.payload);
    return result.payload;
  }

  /** How many verified tokens are remembered now (bounded by VERIFIED_TOKEN_CACHE_SIZE). */
  get rememberedTokens(): number {
    return this.verified.size;
  }

  private remember(token: string, claims: JWTPayload): void {
    if (this.verified.size >= VERIFIED_TOKEN_CACHE_SIZE) {
      const oldest = this.verified.keys().next().value;
      if (oldest !== undefined) this.verified.delete(oldest);
    }
    this.verified.set(token, { claims, until: this.now() + VERIFIED_TOKEN_TTL_MS });
  }

  private viewerFrom(claims: JWTPayload): Viewer {
    const userId = stringClaim(claims, 'universal_id') ?? stringClaim(claims, 'sub');
    if (!userId) throw new TokenProblem('the token has no universal_id or sub claim');
    if (userId.length > 200) throw new TokenProblem('the user id claim is too long');
    // The id reaches SQL: NUL made every query of the request fail (INTERNAL_SERVER_ERROR).
    const unstorable = unstorableText(userId);
    if (unstorable) throw new TokenProblem(`the user id claim contains ${unstorable}`);
    const role = claims.role;
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    const isAdmin = role === 'admin' || roles.includes('admin') || this.config.adminUserIds.includes(userId);
    return {
      userId,
      isAdmin,
      name: stringClaim(claims, 'name'),
      phone: stringClaim(claims, 'phone'),
      github: stringClaim(claims, 'github'),
    };
  }
}

class TokenProblem extends Error {}

class KeySetUnavailable extends Error {}

function stringClaim(claims: JWTPayload, name: string): string | null {
  const value = claims[name];
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

export function extractToken(headerValue: string | undefined): string | null {
  if (headerValue === undefined) return null;
  const trimmed = headerValue.trim();
  if (trimmed === '') return null;
  const token = /^bearer\s+/i.test(trimmed) ? trimmed.replace(/^bearer\s+/i, '').trim() : trimmed;
  return token === '' ? null : token;
}

/** A short, client-safe reason; never the key or the token itself. */
function describeTokenError(error: unknown): string {
  if (error instanceof TokenProblem) return error.message;
  if (error instanceof KeySetUnavailable) return 'the key set could not be fetched';
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'exp' && error.reason === 'missing') return 'the token has no expiry (exp claim)';
    return error.claim === 'nbf' ? 'the token is not valid yet' : `the token's ${error.claim} claim is invalid`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm that is not allowed';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no key of the key set matches the token';
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JOSEError) {
    if (error instanceof joseErrors.JWKSTimeout) return 'the key set could not be fetched';
    return 'the token is malformed or cannot be verified';
  }
  return 'the token is malformed';
}

/** The error a guarded field answers when the request has no usable token. */
export function unauthenticated(authentication: Authentication): DomainError {
  const reason = authentication.kind === 'refused' ? authentication.reason : 'a token is required';
  return new DomainError(ErrorCode.UNAUTHENTICATED, `Not authenticated: ${reason}`);
}

export interface MintOptions {
  userId: string;
  admin?: boolean;
  /** jose duration, e.g. '1h', '30d'. */
  ttl?: string;
  name?: string;
  extraClaims?: Record<string, unknown>;
}

/** Mints an HS256 token (the `token` command, the embedded banner and the tests). */
export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = { universal_id: options.userId, ...options.extraClaims };
  if (options.admin) claims.role = 'admin';
  if (options.name) claims.name = options.name;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(options.ttl ?? '1h')
    .sign(new TextEncoder().encode(secret));
}
