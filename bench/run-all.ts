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
 * A module that is missing, or exports no `run`, is skipped with a message; one that fails to load or
 * to run is reported and the others still run (the exit code is then 1).
 *
 * Arguments: `--quick` (or BENCH_QUICK=1) for small sizes; `--only=scan,read` to run some of them.
 *
 * The npm scripts run every bench with NODE_ENV=production, as production runs do (Dockerfile): graphql-js
 * reads it when it loads and then skips its development-only realm check in every `instanceOf`, a cost
 * production never pays. Each baseline runs in the bench's own process, so where it is GraphQL too (read's
 * bare Apollo) both sides of the ratio get the same mode. Run a bench file directly (tsx, node --import
 * tsx) and it is in development mode unless you set NODE_ENV yourself.
 */

const BENCHES = ['scan', 'transfer', 'read', 'expiry', 'permissions'] as const;
const RESULTS_FILE = new URL('./results.json', import.meta.url);

interface Skipped {
  name: string;
  reason: string;
}

type Loaded = { run: BenchRun } | { skip: string } | { error: string };

/** The `run` of a bench module, why it is skipped (missing, no `run`), or why it failed to load. */
async function loadBench(name: string): Promise<Loaded> {
  const source = new URL(`./${name}.ts`, import.meta.url);
  if (!existsSync(source)) return { skip: `bench/${name}.ts does not exist (yet)` };
  let module: { run?: unknown };
  try {
    module = (await import(source.href)) as { run?: unknown };
  } catch (error) {
    return { error: `bench/${name}.ts could not be loaded: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (typeof module.run !== 'function') return { skip: `bench/${name}.ts exports no run(options) function` };
  return { run: module.run as BenchRun };
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

/** A bench that could not give a result; the run's exit code becomes 1. */
function failed(name: string, error: string): BenchResult {
  process.exitCode = 1;
  return { name, figures: { error }, baseline: '', ratio: null, target: '', met: null };
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
  // Every module is loaded before anything runs: a broken one shows at once, and editing a bench while
  // the runner works through the others does not change what this run measures.
  const loaded = new Map<string, Loaded>();
  for (const name of args.only) loaded.set(name, await loadBench(name));
  const results: BenchResult[] = [];
  const skipped: Skipped[] = [];
  const postgres = await startOwnPostgres('all');
  try {
    const options: BenchOptions = { quick, postgresUrl: postgres.url, log };
    for (const [name, bench] of loaded) {
      if ('skip' in bench) {
        log(`\n=== ${name}: skipped — ${bench.skip}`);
        skipped.push({ name, reason: bench.skip });
        continue;
      }
      if ('error' in bench) {
        log(`\n=== ${name}: ${bench.error}`);
        results.push(failed(name, bench.error));
        continue;
      }
      log(`\n=== ${name}${quick ? ' (quick)' : ''}\n`);
      const benchStarted = performance.now();
      try {
        results.push(await bench.run(options));
      } catch (error) {
        console.error(error);
        results.push(failed(name, error instanceof Error ? error.message : String(error)));
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
