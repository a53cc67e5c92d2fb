import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { GatewaySimulator } from '../../src/modules/gateway/simulator/gateway-simulator.js';
import { testEnv } from '../support/app.js';
import { dropDatabase, executeOn, uniqueDatabaseUrl } from '../support/database.js';

/**
 * AUTH_DATABASE_URL names the login system's database (SPEC §2). One without a readable `auth_users`
 * stops the start with a message saying so — rather than a server that answers /ready and then fails
 * every request that looks a user up with INTERNAL_SERVER_ERROR.
 */

const simulator = new GatewaySimulator();
let gatewayUrl: string;
const databases: string[] = [];

beforeAll(async () => {
  gatewayUrl = await simulator.start(0);
});

afterAll(async () => {
  await simulator.stop();
  for (const url of databases) await dropDatabase(url);
});

async function databaseWith(label: string, sql: string): Promise<string> {
  const url = uniqueDatabaseUrl(label);
  databases.push(url);
  await executeOn(url, sql);
  return url;
}

describe('the user directory is checked at start', () => {
  it.each([
    ['no auth_users table', 'create table unrelated (id int)', /cannot be read: .*"auth_users" does not exist/],
    [
      'an auth_users without a column we read',
      'create table auth_users (id text primary key, name text, vip integer not null default 0)',
      /cannot be read: .*column "created_at" does not exist/,
    ],
  ])('%s: the start fails saying so', async (label, sql, message) => {
    const directoryUrl = await databaseWith(`directory ${label}`, sql);
    const mainUrl = uniqueDatabaseUrl(`main ${label}`);
    databases.push(mainUrl);
    const config = loadConfig({ ...testEnv(mainUrl, gatewayUrl), AUTH_DATABASE_URL: directoryUrl });
    config.port = 0;

    await expect(startApp({ config, logger: silentLogger(), schedule: false })).rejects.toThrow(message);
  });
});
