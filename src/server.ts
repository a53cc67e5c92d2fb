import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ApolloServer, HeaderMap } from '@apollo/server';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import type { GraphQLSchema } from 'graphql';
import type { AppConfig } from './config.js';
import { ErrorCode } from './errors.js';
import type { RequestContext } from './graphql/context.js';
import { createErrorFormatter, errorContextPlugin } from './graphql/error-formatter.js';
import { complexityPlugin, MAX_DOCUMENT_TOKENS, operationShapeRule } from './graphql/limits.js';
import { PLAYGROUND_ASSET_PREFIX, PLAYGROUND_CSP, playgroundAsset, playgroundPage } from './graphql/playground.js';
import { textInputPlugin } from './graphql/text-input.js';
import type { Logger } from './logger.js';
import type { TokenVerifier } from './modules/auth/token-verifier.js';
import { graphqlMetricsPlugin } from './modules/metrics/graphql-metrics.plugin.js';
import type { Services } from './services.js';

/**
 * The HTTP side: /graphql (Apollo, and GraphiQL for browsers), /health, /ready, /metrics. A plain node:http
 * server, so body limits, batching, CORS and request ids are handled here, visibly, before Apollo.
 */

const GRAPHQL_PATH = '/graphql';
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;

export interface HttpServerOptions {
  config: AppConfig;
  schema: GraphQLSchema;
  services: Services;
  verifier: TokenVerifier;
  logger: Logger;
}

export interface HttpApp {
  server: Server;
  apollo: ApolloServer<RequestContext>;
  /** Resolves with the bound port. */
  listen(port: number, host: string): Promise<number>;
  /** Stops accepting, lets in-flight requests finish (up to the timeout), then stops Apollo. */
  close(timeoutMs: number): Promise<void>;
}

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function requestLoggingPlugin() {
  return {
    async requestDidStart({ contextValue }: { contextValue: RequestContext }) {
      const started = performance.now();
      return {
        async willSendResponse({
          request,
          errors,
          operationName,
        }: {
          request: { operationName?: string };
          errors?: readonly unknown[];
          operationName?: string | null;
        }) {
          contextValue.logger.info(
            {
              operation: operationName ?? request.operationName ?? null,
              durationMs: Math.round((performance.now() - started) * 10) / 10,
              errors: errors?.length ?? 0,
            },
            'graphql request',
          );
        },
      };
    },
  };
}

export async function createHttpApp(options: HttpServerOptions): Promise<HttpApp> {
  const { config, schema, services, verifier, logger } = options;
  const limits = config.graphql;

  const apollo = new ApolloServer<RequestContext>({
    schema,
    introspection: limits.introspection,
    csrfPrevention: true,
    allowBatchedHttpRequests: false,
    // main.ts owns the signals and stops Apollo as part of its own ordered shutdown.
    stopOnTerminationSignals: false,
    includeStacktraceInErrorResponses: false,
    formatError: createErrorFormatter(logger),
    validationRules: [operationShapeRule(limits)],
    parseOptions: { maxTokens: MAX_DOCUMENT_TOKENS },
    plugins: [
      ApolloServerPluginLandingPageDisabled(),
      // No field sets a cache hint, and the default plugin wraps every resolver call (~4% of the read
      // bench's CPU) only to answer `cache-control: no-store`, which handleGraphql now sets itself.
      ApolloServerPluginCacheControlDisabled(),
      errorContextPlugin(),
      complexityPlugin(limits),
      textInputPlugin(),
      requestLoggingPlugin(),
      ...(config.metricsEnabled ? [graphqlMetricsPlugin(services.metrics)] : []),
    ],
    logger: {
      debug: (message) => logger.debug(message),
      info: (message) => logger.info(message),
      warn: (message) => logger.warn(message),
      error: (message) => logger.error(message),
    },
  });
  await apollo.start();

  const inFlight = new Set<Promise<void>>();

  const server = createServer((req, res) => {
    const handling = handle(req, res).catch((error) => {
      logger.error({ err: error }, 'unhandled error in the HTTP handler');
      if (!res.headersSent) sendJson(res, 500, graphqlError('Internal server error', ErrorCode.INTERNAL_SERVER_ERROR));
      else res.destroy();
    });
    inFlight.add(handling);
    handling.finally(() => inFlight.delete(handling));
  });
  // Idle keep-alive connections stay open longer than the usual proxy or load balancer idle timeout
  // (60 s): a server that closes first races the proxy's next request on that connection, which the
  // client then sees as a reset (a 502 behind a load balancer; UND_ERR_SOCKET from fetch in tests).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const incomingId = headerValue(req, 'x-request-id');
    const requestId = incomingId && REQUEST_ID_PATTERN.test(incomingId) ? incomingId : randomUUID();
    res.setHeader('x-request-id', requestId);
    res.setHeader('x-content-type-options', 'nosniff');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';

    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      const report = await services.health.report();
      return sendJson(res, report.database ? 200 : 503, report);
    }
    if (path === '/ready' && (req.method === 'GET' || req.method === 'HEAD')) {
      const readiness = await services.health.ready();
      return sendJson(res, readiness.ready ? 200 : 503, readiness);
    }
    // Prometheus scrapes; public like /health, so keep it off the public internet (docs/operations.md).
    if (path === '/metrics' && config.metricsEnabled && (req.method === 'GET' || req.method === 'HEAD')) {
      const body = await services.metrics.render();
      res.writeHead(200, { 'content-type': services.metrics.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (url.pathname.startsWith(PLAYGROUND_ASSET_PREFIX) && req.method === 'GET' && limits.playground) {
      const asset = playgroundAsset(url.pathname.slice(PLAYGROUND_ASSET_PREFIX.length));
      if (!asset) return sendJson(res, 404, { error: 'not found' });
      res.writeHead(200, { 'content-type': `${asset.type}; charset=utf-8`, 'cache-control': 'public, max-age=3600' });
      res.end(asset.body);
      return;
    }
    if (path === GRAPHQL_PATH) {
      if (applyCors(req, res, config.corsOrigins)) return;
      if (req.method === 'GET' && limits.playground && wantsHtml(req) && !url.searchParams.has('query')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PLAYGROUND_CSP });
        res.end(playgroundPage());
        return;
      }
      return handleGraphql(req, res, url, requestId);
    }
    sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
  }

  async function handleGraphql(req: IncomingMessage, res: ServerResponse, url: URL, requestId: string): Promise<void> {
    let body: unknown;
    try {
      body = await readBody(req, limits.maxBodyBytes);
    } catch (error) {
      if (error instanceof HttpProblem)
        return sendJson(res, error.status, graphqlError(error.message, ErrorCode.BAD_USER_INPUT));
      throw error;
    }
    if (Array.isArray(body)) {
      return sendJson(
        res,
        400,
        graphqlError('Batched requests are not supported: send one operation per request.', ErrorCode.BAD_USER_INPUT),
      );
    }

    const headers = new HeaderMap();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }

    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => {
        const authentication = await verifier.authenticate(headerValue(req, config.auth.tokenHeader));
        const viewer = authentication.kind === 'viewer' ? authentication.viewer : null;
        return {
          requestId,
          em: services.orm.em.fork(),
          authentication,
          viewer,
          logger: logger.child({ requestId, userId: viewer?.userId ?? null }),
          services,
        };
      },
    });

    // Answers are per viewer: no cache between client and server may keep one (GET queries included).
    res.setHeader('cache-control', 'no-store');
    for (const [name, value] of response.headers) res.setHeader(name, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  }

  return {
    server,
    apollo,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    async close(timeoutMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drained = Promise.allSettled([...inFlight]);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([drained, timeout]);
      clearTimeout(timer);
      server.closeAllConnections();
      await closed;
      await apollo.stop();
    },
  };
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function wantsHtml(req: IncomingMessage): boolean {
  return (headerValue(req, 'accept') ?? '').includes('text/html');
}

/**
 * CORS for admin frontends on their own origin. `*` allows any origin without credentials (tokens
 * travel in a header, not cookies). Returns true when it answered a preflight.
 */
function applyCors(req: IncomingMessage, res: ServerResponse, allowed: string[]): boolean {
  const origin = headerValue(req, 'origin');
  if (origin) {
    if (allowed.includes('*')) res.setHeader('access-control-allow-origin', '*');
    else if (allowed.includes(origin)) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'origin');
    }
  }
  if (req.method === 'OPTIONS') {
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader(
      'access-control-allow-headers',
      headerValue(req, 'access-control-request-headers') ?? 'content-type, authorization',
    );
    res.setHeader('access-control-max-age', '600');
    res.statusCode = 204;
    res.end();
    return true;
  }
  return false;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads and parses a JSON body, refusing oversize bodies (413), invalid UTF-8 and invalid JSON (400). */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  if (req.method !== 'POST') return undefined;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    throw new HttpProblem(413, `The request body is larger than ${maxBytes} bytes.`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      req.resume();
      throw new HttpProblem(413, `The request body is larger than ${maxBytes} bytes.`);
    }
    chunks.push(chunk as Buffer);
  }
  const raw = Buffer.concat(chunks);
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  if (!contentType.includes('application/json') && !contentType.includes('application/graphql-response+json')) {
    // Apollo answers non-JSON bodies itself (CSRF prevention, a clear 400).
    return raw.length === 0 ? undefined : raw.toString('latin1');
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new HttpProblem(400, 'The request body is not valid UTF-8.');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpProblem(400, 'The request body is not valid JSON.');
  }
}

function graphqlError(message: string, code: ErrorCode) {
  return { errors: [{ message, extensions: { code } }] };
}

function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
