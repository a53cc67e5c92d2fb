import { createServer, type Server, type Socket } from 'node:net';
import { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import type { GatewayClient } from '../../src/modules/gateway/gateway.client.js';
import { HealthService } from '../../src/modules/health/health.service.js';
import { until } from '../support/until.js';

/**
 * A database address that accepts connections and never answers (a hung primary, a stale failover
 * address): the check must answer "down" within its 2 s, share one attempt among the checks that
 * arrive meanwhile, and close what it opened — not hang, nor leave one more socket per check.
 */

let silent: Server;
const sockets: Socket[] = [];
const closed = new Set<Socket>();
let orm: MikroORM;

beforeAll(async () => {
  silent = createServer((socket) => {
    sockets.push(socket);
    socket.on('close', () => closed.add(socket));
    socket.on('error', () => undefined);
    // Reads (and ignores) what the client sends, so it sees the client's end of the connection.
    socket.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  orm = await MikroORM.init({
    clientUrl: `postgres://postgres:secret@127.0.0.1:${port}/nothing`,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    allowGlobalContext: true,
    connect: false,
    ensureDatabase: false,
  });
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent?.close(resolve));
  await orm?.close(true);
});

describe('a database that accepts connections and never answers', () => {
  it('each check answers not ready; checks at once share one connection; every socket is closed', async () => {
    const health = new HealthService(orm, {} as GatewayClient, 'test', silentLogger());
    const together = await Promise.all(Array.from({ length: 5 }, () => health.ready()));
    for (const readiness of together) expect(readiness).toMatchObject({ ready: false, database: false });
    expect(sockets).toHaveLength(1);
    expect(await health.ready()).toMatchObject({ ready: false, database: false });
    expect(sockets).toHaveLength(2);
    await until(
      'the check closed every connection it opened',
      () => sockets.every((socket) => closed.has(socket)),
      10_000,
    );
  });
});
