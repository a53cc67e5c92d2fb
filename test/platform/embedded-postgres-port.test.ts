import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { capturingLogger } from '../support/logger.js';

/**
 * The embedded PostgreSQL's port is picked free, then bound by PostgreSQL a moment later; another
 * process may take it in between. The start then tries another port, and a start that cannot succeed
 * says PostgreSQL's own reason.
 */

let folder: string;
let squatter: Server;
let takenPort: number;

beforeAll(async () => {
  folder = await mkdtemp(path.join(tmpdir(), 'qm-embedded-port-'));
  // As root the cluster runs as user postgres, who must be able to enter mkdtemp's 0700 folder.
  await chmod(folder, 0o755);
  squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  takenPort = (squatter.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((resolve) => squatter?.close(resolve));
  await rm(folder, { recursive: true, force: true });
});

describe('the embedded PostgreSQL on a port taken after it was picked', () => {
  it('tries another port, says so, and serves queries there', async () => {
    const { logger, lines } = capturingLogger();
    const picked: number[] = [];
    const database = await startEmbeddedPostgres({
      root: path.join(folder, 'retry'),
      persistent: false,
      logger,
      pickPort: async () => {
        const port = picked.length === 0 ? takenPort : await freePort();
        picked.push(port);
        return port;
      },
    });
    try {
      expect(picked).toHaveLength(2);
      expect(database.port).toBe(picked[1]);
      expect(database.url).toContain(`:${picked[1]}/`);
      expect(lines()).toContainEqual(
        expect.objectContaining({
          port: takenPort,
          attempt: 1,
          msg: expect.stringMatching(/was taken; trying another/),
        }),
      );
      const orm = await MikroORM.init({
        clientUrl: database.url,
        entities: [],
        discovery: { warnWhenNoEntities: false },
        allowGlobalContext: true,
      });
      try {
        expect(await orm.em.getConnection().execute('select 1 as one')).toEqual([{ one: 1 }]);
      } finally {
        await orm.close(true);
      }
    } finally {
      await database.stop();
    }
  });

  it('gives up after three taken ports with PostgreSQL’s reason', async () => {
    const { logger } = capturingLogger();
    let picks = 0;
    const start = startEmbeddedPostgres({
      root: path.join(folder, 'taken'),
      persistent: false,
      logger,
      pickPort: async () => {
        picks++;
        return takenPort;
      },
    });
    await expect(start).rejects.toThrow(
      /did not start: .*could not bind .*Address already in use.*FATAL: {2}could not create any TCP\/IP sockets/s,
    );
    expect(picks).toBe(3);
  });
});
