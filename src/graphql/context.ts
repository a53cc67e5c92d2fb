import type { EntityManager } from '../db/orm.js';
import type { Logger } from '../logger.js';
import type { Authentication, Viewer } from '../modules/auth/token-verifier.js';
import type { Services } from '../services.js';

/**
 * What every resolver gets: a forked EntityManager for this request, who is calling, a logger
 * bound to the request, and the services. Nothing else is shared between requests.
 */
export interface RequestContext {
  requestId: string;
  em: EntityManager;
  authentication: Authentication;
  viewer: Viewer | null;
  logger: Logger;
  services: Services;
}
