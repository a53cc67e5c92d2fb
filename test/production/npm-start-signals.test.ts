import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../support/until.js';

/**
 * `npm start` runs its script through `sh -c`; unless the script `exec`s node, the tree is
 * npm → sh → node, and a SIGTERM sent to npm (a process manager, `kill $!` in a script) reaches neither
 * sh nor node: npm exits at once and the server keeps running, orphaned, with its PostgreSQL. This runs
 * package.json's own start script — with the server swapped for a stand-in that reports the signals it
 * gets — under real npm.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVER_ENTRY = 'dist/src/main.js';

/**
 * Prints its pid, then "got SIGTERM" and exits 0 on SIGTERM (as the server does after a clean shutdown).
 * The handler is in place before the pid is printed: the test signals as soon as it reads the pid, and
 * a SIGTERM arriving before the handler would kill the stand-in by the default action instead.
 */
const STAND_IN = `
process.on('SIGTERM', () => { process.stdout.write('got SIGTERM\\n'); process.exit(0); });
process.stdout.write('pid ' + process.pid + '\\n');
setInterval(() => {}, 1000);
`;

let folder: string | null = null;
let standInPid: number | null = null;

afterEach(async () => {
  // A stand-in the signal never reached would otherwise outlive the test.
  if (standInPid !== null) {
    try {
      process.kill(standInPid, 'SIGKILL');
    } catch {}
  }
  standInPid = null;
  if (folder) await rm(folder, { recursive: true, force: true });
  folder = null;
});

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('npm start and signals', () => {
  it('a SIGTERM sent to npm reaches the server, which shuts down; npm exits 0', async () => {
    const manifest = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const start = manifest.scripts.start!;
    expect(start).toContain(SERVER_ENTRY);
    folder = await mkdtemp(path.join(tmpdir(), 'quota-manager-npm-start-'));
    await writeFile(path.join(folder, 'stand-in.js'), STAND_IN);
    await writeFile(
      path.join(folder, 'package.json'),
      JSON.stringify({
        name: 'npm-start-signals',
        private: true,
        scripts: { start: start.replace(SERVER_ENTRY, 'stand-in.js') },
      }),
    );

    const npm = spawn('npm', ['start', '--silent'], { cwd: folder, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = exitOf(npm);
    let output = '';
    npm.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await until('the stand-in to start', () => /pid (\d+)/.test(output), 30_000);
    standInPid = Number(/pid (\d+)/.exec(output)![1]);

    npm.kill('SIGTERM');

    expect(await exited).toEqual({ code: 0, signal: null });
    expect(output).toContain('got SIGTERM');
    standInPid = null;
  });
});
