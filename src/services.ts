import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from './clock.js';
import type { AppConfig } from './config.js';
import type { Logger } from './logger.js';
import type { GatewayClient } from './modules/gateway/gateway.client.js';
import type { GatewayAdminService } from './modules/gateway/gateway-admin.service.js';
import type { HealthService } from './modules/health/health.service.js';
import type { UserDirectory } from './modules/users/user-directory.js';

/**
 * The services of one running server, built once in src/app.ts and handed to resolvers through the
 * request context and to jobs directly. Stateless apart from configuration: each call gets the
 * EntityManager of its request or job.
 */
export interface Services {
  config: AppConfig;
  clock: Clock;
  logger: Logger;
  orm: MikroORM;
  gateway: GatewayClient;
  directory: UserDirectory;
  health: HealthService;
  gatewayAdmin: GatewayAdminService;
}
