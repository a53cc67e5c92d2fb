import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  type BenchOptions,
  type BenchResult,
  type BenchRun,
  formatResultTable,
  resolveOptions,
  startOwnPostgres,
} from './support.js';

/**
 * `npm run bench`: every benchmark, one after the other, on one embedded PostgreSQL (each bench makes
 * and drops a database of its own on it), then `bench/results.json` and a short table. Each bench runs
 * its own baseline in the same process and reports its ratio and whether it met its target.
 *
 * A bench is a module beside this one exporting `run(options): Promise<BenchResult>` (see support.ts).
 * A module that is missing, or exports no `run`, is skipped with a message; one that fails is reported
 * and the others still run (the exit code is then 1).
 *
 * Arguments: `--quick` (or BENCH_QUICK=1) for small sizes; `--only=scan,read` to run some of them.
 */

const BENCHES = ['scan', 'transfer', 'read', 'expiry', 'permissions'] as const;
const RESULTS_FILE = new URL('./results.json', import.meta.url);

interface Skipped {
  name: string;
  reason: string;
}

/** The module of a bench, or why it cannot be run. */
async function loadBench(name: string): Promise<BenchRun | string> {
  const source = new URL(`./${name}.ts`, import.meta.url);
  if (!existsSync(source)) return `bench/${name}.ts does not exist (yet)`;
  const module = (await import(source.href)) as { run?: unknown };
  if (typeof module.run !== 'function') return `bench/${name}.ts exports no run(options) function`;
  return module.run as BenchRun;
}

function parseArguments(argv: readonly string[]): { quick?: boolean; only: string[] } {
  let quick: boolean | undefined;
  let only: string[] = [...BENCHES];
  for (const argument of argv) {
    if (argument === '--quick') quick = true;
    else if (argument.startsWith('--only=')) {
      only = argument
        .slice('--only='.length)
        .split(',')
        .map((name) => name.trim())
        .filter((name) => name !== '');
      const unknown = only.filter((name) => !(BENCHES as readonly string[]).includes(name));
      if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${BENCHES.join(', ')}`);
    } else throw new Error(`unknown argument ${argument}; use --quick and --only=name,name`);
  }
  return { quick, only };
}

function machine() {
  const processors = cpus();
  return {
    cpus: processors.length,
    cpuModel: processors[0]?.model ?? 'unknown',
    memoryGb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    exposeGc: typeof global.gc === 'function',
  };
}

async function main(): Promise<void> {
  const args = parseArguments(process.argv.slice(2));
  const { quick, log } = resolveOptions({ quick: args.quick });
  const started = new Date();
  const postgres = await startOwnPostgres('all');
  const results: BenchResult[] = [];
  const skipped: Skipped[] = [];
  try {
    const options: BenchOptions = { quick, postgresUrl: postgres.url, log };
    for (const name of args.only) {
      const bench = await loadBench(name);
      if (typeof bench === 'string') {
        log(`\n=== ${name}: skipped — ${bench}`);
        skipped.push({ name, reason: bench });
        continue;
      }
      log(`\n=== ${name}${quick ? ' (quick)' : ''}\n`);
      const benchStarted = performance.now();
      try {
        results.push(await bench(options));
      } catch (error) {
        console.error(error);
        const message = error instanceof Error ? error.message : String(error);
        results.push({ name, figures: { error: message }, baseline: '', ratio: null, target: '', met: null });
        process.exitCode = 1;
      }
      log(`\n(${name} took ${((performance.now() - benchStarted) / 1000).toFixed(0)} s)`);
    }
  } finally {
    await postgres.stop();
  }

  const report = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    quick,
    machine: machine(),
    results,
    skipped,
  };
  await writeFile(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
  log(`\n${formatResultTable(results)}`);
  for (const each of skipped) log(`${each.name}: skipped — ${each.reason}`);
  log(`\nWrote ${fileURLToPath(RESULTS_FILE)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
