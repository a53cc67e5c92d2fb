import { Cron } from 'croner';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DomainError, ErrorCode } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { scheduledInstant } from '../../src/modules/jobs/cron.js';
import type { JobExecution, JobHandler } from '../../src/modules/jobs/job-runner.js';
import { JobRunner } from '../../src/modules/jobs/job-runner.js';
import { Scheduler } from '../../src/modules/jobs/scheduler.js';
import { amountToCents } from '../../src/money.js';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';

/** SPEC §9: JobRun rows, triggerScan, jobRun(s), failures, stale runs, shutdown, claims across instances. */

let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'jobs' });
});
afterAll(async () => app?.stop());

interface RunView {
  id: string;
  type: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  processed: number;
  succeeded: number;
  failed: number;
  error: string | null;
}
const RUN_FIELDS = 'id type status startedAt finishedAt processed succeeded failed error';

function admin<T = Record<string, unknown>>(query: string, variables: Record<string, unknown> = {}) {
  return app.gql<T>(query, variables, { token: app.adminToken });
}

async function trigger(type: string): Promise<RunView> {
  const response = await admin<{ triggerScan: RunView }>(
    `mutation($t: ScanType!) { triggerScan(type: $t) { ${RUN_FIELDS} } }`,
    {
      t: type,
    },
  );
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.triggerScan;
}

async function jobRun(id: string, target: TestApp = app): Promise<RunView | null> {
  const response = await target.gql<{ jobRun: RunView | null }>(
    `query($id: ID!) { jobRun(id: $id) { ${RUN_FIELDS} } }`,
    { id },
    { token: target.adminToken },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.jobRun;
}

/** A handler that counts and then waits until released (or aborted by shutdown). */
function gate() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const handler: JobHandler = async (execution: JobExecution) => {
    execution.progress.processed(2);
    execution.progress.succeeded();
    execution.progress.failed();
    await Promise.race([
      released,
      new Promise((resolve) => execution.signal.addEventListener('abort', resolve, { once: true })),
    ]);
  };
  return { handler, release };
}

async function finished(id: string, target: TestApp = app): Promise<RunView> {
  await target.app.services.jobs.runner.waitFor(id);
  const run = await jobRun(id, target);
  return run!;
}

describe('triggerScan, jobRun, jobRuns', () => {
  test('triggerScan returns a RUNNING run at once; a second trigger of the same type returns that run', async () => {
    const { handler, release } = gate();
    app.app.services.jobs.registerScan('SYNC_QUOTAS', { jobKey: 'sync-quotas', handler });
    try {
      const first = await trigger('SYNC_QUOTAS');
      expect(first).toMatchObject({ type: 'SYNC_QUOTAS', status: 'RUNNING', finishedAt: null, error: null });
      expect(first.startedAt).not.toBeNull();
      const second = await trigger('SYNC_QUOTAS');
      expect(second.id).toBe(first.id);
      release();
      const done = await finished(first.id);
      expect(done).toMatchObject({ status: 'SUCCEEDED', processed: 2, succeeded: 1, failed: 1, error: null });
      expect(done.finishedAt).not.toBeNull();
      const third = await trigger('SYNC_QUOTAS');
      expect(third.id).not.toBe(first.id);
      await finished(third.id);
    } finally {
      release();
      registerRealSyncQuotas();
    }
  });

  test('jobRun of an unknown or malformed id is null', async () => {
    for (const id of ['999999999', 'abc', '', '1e3', '12345678901234567890']) expect(await jobRun(id)).toBeNull();
  });

  test('jobRuns: newest first, filtered by type, bounded by first', async () => {
    const runs: RunView[] = [];
    for (const type of ['EXPIRE_QUOTAS', 'SYNC_QUOTAS', 'EXPIRE_QUOTAS']) {
      const run = await trigger(type);
      runs.push(await finished(run.id));
    }
    const all = await admin<{ jobRuns: RunView[] }>(`{ jobRuns(first: 3) { ${RUN_FIELDS} } }`);
    expect(all.data!.jobRuns.map((run) => run.id)).toEqual(runs.map((run) => run.id).reverse());
    const expiries = await admin<{ jobRuns: RunView[] }>(`{ jobRuns(type: EXPIRE_QUOTAS) { id type } }`);
    expect(expiries.data!.jobRuns.every((run) => run.type === 'EXPIRE_QUOTAS')).toBe(true);
    expect(expiries.data!.jobRuns.slice(0, 2).map((run) => run.id)).toEqual([runs[2]!.id, runs[0]!.id]);
    const one = await admin<{ jobRuns: RunView[] }>('{ jobRuns(first: 1) { id } }');
    expect(one.data!.jobRuns).toHaveLength(1);
    for (const first of [0, 101, -1]) {
      expect(errorCode(await admin(`{ jobRuns(first: ${first}) { id } }`))).toBe('BAD_USER_INPUT');
    }
  });

  test('a failing handler ends FAILED with `CODE: message`; unexpected errors leak nothing', async () => {
    app.app.services.jobs.registerScan('SYNC_QUOTAS', {
      jobKey: 'sync-quotas',
      handler: async () => {
        throw new DomainError(ErrorCode.GATEWAY_UNAVAILABLE, 'the gateway did not answer');
      },
    });
    try {
      const failed = await finished((await trigger('SYNC_QUOTAS')).id);
      expect(failed).toMatchObject({ status: 'FAILED', error: 'GATEWAY_UNAVAILABLE: the gateway did not answer' });
      app.app.services.jobs.registerScan('SYNC_QUOTAS', {
        jobKey: 'sync-quotas',
        handler: async () => {
          throw new Error('connect ECONNREFUSED 10.0.0.7:5432 password=secret');
        },
      });
      const crashed = await finished((await trigger('SYNC_QUOTAS')).id);
      expect(crashed.status).toBe('FAILED');
      expect(crashed.error).toMatch(/^INTERNAL_SERVER_ERROR: /);
      expect(crashed.error).not.toMatch(/ECONNREFUSED|secret/);
    } finally {
      registerRealSyncQuotas();
    }
  });

  test('employee sync with HR disabled fails with HR_SYNC_FAILED first in the error', async () => {
    const run = await finished((await trigger('EMPLOYEE_SYNC')).id);
    expect(run.status).toBe('FAILED');
    expect(run.error).toMatch(/^HR_SYNC_FAILED: /);
  });

  test('SYNC_QUOTAS and EXPIRE_QUOTAS run the ledger jobs and report their counters', async () => {
    await app.app.services.orm.em
      .fork()
      .execute(`insert into auth_users (id) values ('drifted') on conflict do nothing`);
    await app.app.services.quota.grantQuota(app.app.services.orm.em.fork(), {
      userId: 'drifted',
      amount: amountToCents(10),
      expiryDate: new Date(Date.now() + 30 * 86_400_000),
      actor: 'test',
    });
    app.simulator.setUser('drifted', { total: 1 });
    const sync = await finished((await trigger('SYNC_QUOTAS')).id);
    expect(sync).toMatchObject({ status: 'SUCCEEDED', failed: 0 });
    expect(sync.processed).toBeGreaterThanOrEqual(1);
    expect(app.simulator.getUser('drifted').total).toBe(1000);
    const expiry = await finished((await trigger('EXPIRE_QUOTAS')).id);
    expect(expiry).toMatchObject({ status: 'SUCCEEDED', failed: 0 });
    // Every user with a VALID batch ('drifted' among them) is walked, and the run reports each one.
    expect(expiry.processed).toBeGreaterThanOrEqual(1);
    expect(expiry.succeeded).toBe(expiry.processed);
    await assertLedgerInvariants(app.app.services.orm.em.fork(), app.simulator);
  });

  test('triggerScan is for admins', async () => {
    expect(
      errorCode(await app.gql('mutation { triggerScan(type: STRATEGY) { id } }', {}, { token: app.userToken })),
    ).toBe('FORBIDDEN');
    expect(errorCode(await app.gql('{ jobRuns { id } }', {}, { token: app.userToken }))).toBe('FORBIDDEN');
    expect(errorCode(await app.gql('{ jobRun(id: "1") { id } }', {}, { token: app.userToken }))).toBe('FORBIDDEN');
  });
});

/** Puts the real SYNC_QUOTAS handler back after a test replaced it. */
function registerRealSyncQuotas(): void {
  const services = app.app.services;
  services.jobs.registerScan('SYNC_QUOTAS', {
    jobKey: 'sync-quotas',
    handler: async (execution) => {
      await services.quotaSync.syncQuotas({ progress: execution.progress, signal: execution.signal });
    },
  });
}

describe('claims, stale runs, shutdown', () => {
  test('a RUNNING run whose heartbeat stopped is reaped, which frees its job', async () => {
    const [stale] = await app.app.services.orm.em.fork().execute<{ id: string }[]>(
      `insert into job_run (type, job_key, exclusive, trigger, status, instance_id, heartbeat_at, started_at)
       values ('EXPIRE_QUOTAS', 'expire', true, 'SCHEDULE', 'RUNNING', 'dead-instance', now() - interval '1 hour', now() - interval '1 hour')
       returning id::text`,
    );
    const fresh = await trigger('EXPIRE_QUOTAS');
    expect(fresh.id).not.toBe(stale!.id);
    const reaped = await jobRun(stale!.id);
    expect(reaped).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^INTERRUPTED: /) });
    expect(reaped!.finishedAt).not.toBeNull();
    await finished(fresh.id);
    expect(await app.app.services.jobs.runner.reapStaleRuns()).toBe(0);
  });

  test('a run whose heartbeat is 20 s old (database time) is still going: not reaped, and its job does not start again', async () => {
    const insert = (age: string) =>
      app.app.services.orm.em.fork().execute<{ id: string }[]>(
        `insert into job_run (type, job_key, exclusive, trigger, status, instance_id, heartbeat_at, started_at)
         values ('EXPIRE_QUOTAS', 'expire', true, 'SCHEDULE', 'RUNNING', 'other-instance', now() - ?::interval, now())
         returning id::text`,
        [age],
      );
    const [alive] = await insert('20 seconds'); // the stale cut-off is 30 s (JOB_STALE_AFTER_SECONDS)
    expect(await app.app.services.jobs.runner.reapStaleRuns()).toBe(0);
    expect((await trigger('EXPIRE_QUOTAS')).id).toBe(alive!.id);
    await app.app.services.orm.em
      .fork()
      .execute(`update job_run set heartbeat_at = now() - interval '40 seconds' where id = ?`, [alive!.id]);
    expect(await app.app.services.jobs.runner.reapStaleRuns()).toBe(1);
    expect(await jobRun(alive!.id)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^INTERRUPTED: /) });
  });

  test('two JobRunners on one database claiming the same fire key: one run', async () => {
    const runners = [
      new JobRunner(app.app.services.orm, silentLogger()),
      new JobRunner(app.app.services.orm, silentLogger()),
      app.app.services.jobs.runner,
    ];
    let executed = 0;
    const handler: JobHandler = async () => {
      executed += 1;
    };
    const fireKey = `claim-test@${new Date().toISOString()}`;
    const results = await Promise.all(
      runners.map((runner) =>
        runner.start({
          type: 'STRATEGY',
          jobKey: 'claim-test',
          exclusive: true,
          trigger: 'SCHEDULE',
          fireKey,
          handler,
        }),
      ),
    );
    expect(results.filter((result) => result.started)).toHaveLength(1);
    for (const runner of runners) await Promise.all(runner.activeRunIds.map((id) => runner.waitFor(id)));
    expect(executed).toBe(1);
    const rows = await app.app.services.orm.em.fork().execute('select id from job_run where fire_key = ?', [fireKey]);
    expect(rows).toHaveLength(1);
  });

  test('a run claimed while the runner stops is recorded FAILED and never started', async () => {
    const runner = new JobRunner(app.app.services.orm, silentLogger());
    let started = false;
    // The claim is under way (its stale-run sweep and insert) when shutdown stops the runner: a
    // request still draining does exactly this.
    const claim = runner.start({
      type: 'SYNC_QUOTAS',
      jobKey: `late-claim-${Date.now()}`,
      exclusive: true,
      trigger: 'MANUAL',
      handler: async () => {
        started = true;
      },
    });
    await runner.stop(1_000);
    const result = await claim;
    await runner.settle(1_000);
    expect(result.started).toBe(true);
    if (!result.started) return;
    expect(started).toBe(false);
    expect(await jobRun(result.run.id)).toMatchObject({
      status: 'FAILED',
      error: 'INTERRUPTED: the server was shutting down; the run did not start',
    });
    expect(runner.activeRunIds).toEqual([]);
  });

  test('a run another instance ended keeps that record, and its work is told to stop', async () => {
    const runner = new JobRunner(app.app.services.orm, silentLogger(), { counterFlushMs: 10, heartbeatMs: 10 });
    let sawAbort = false;
    const result = await runner.start({
      type: 'SYNC_QUOTAS',
      jobKey: `taken-over-${Date.now()}`,
      exclusive: true,
      trigger: 'MANUAL',
      handler: async ({ signal, progress }) => {
        progress.processed();
        const deadline = Date.now() + 10_000;
        while (!signal.aborted && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
        sawAbort = signal.aborted;
      },
    });
    if (!result.started) throw new Error('expected a claim');
    // What a reaper on another instance writes when it saw no heartbeat in time.
    await app.app.services.orm.em
      .fork()
      .execute(`update job_run set status = 'FAILED', error = 'INTERRUPTED: reaped by the test' where id = ?`, [
        result.run.id,
      ]);
    await runner.waitFor(result.run.id);
    expect(sawAbort).toBe(true);
    expect(await jobRun(result.run.id)).toMatchObject({ status: 'FAILED', error: 'INTERRUPTED: reaped by the test' });
  });

  test('shutdown during a long run leaves no run RUNNING, whether the job stops at a safe point or not', async () => {
    const other = await startTestApp({
      label: 'jobs shutdown',
      databaseUrl: app.databaseUrl,
      simulator: app.simulator,
      env: { SHUTDOWN_TIMEOUT_MS: '300' },
    });
    const polite = gate();
    other.app.services.jobs.registerScan('SYNC_QUOTAS', { jobKey: 'shutdown-polite', handler: polite.handler });
    other.app.services.jobs.registerScan('EXPIRE_QUOTAS', {
      jobKey: 'shutdown-stubborn',
      handler: () => new Promise<void>(() => undefined), // ignores the abort signal
    });
    const politeRun = await other.app.services.jobs.triggerScan('SYNC_QUOTAS', 'admin-1');
    const stubbornRun = await other.app.services.jobs.triggerScan('EXPIRE_QUOTAS', 'admin-1');
    await other.stop();
    // Marked ended by stop(): no longer awaited (settle, after HTTP drained, would wait for it again).
    expect(other.app.services.jobs.runner.activeRunIds).toEqual([]);
    const rows = await app.app.services.orm.em
      .fork()
      .execute<{ id: string; status: string; error: string }[]>(
        'select id::text, status, error from job_run where id in (?, ?) order by id',
        [politeRun.id, stubbornRun.id],
      );
    expect(rows.map((row) => [row.status, row.error])).toEqual([
      ['FAILED', expect.stringMatching(/^INTERRUPTED: /)],
      ['FAILED', expect.stringMatching(/^INTERRUPTED: /)],
    ]);
    const running = await app.app.services.orm.em
      .fork()
      .execute(`select id from job_run where status = 'RUNNING' and job_key like 'shutdown-%'`);
    expect(running).toHaveLength(0);
  });
});

describe('scheduler', () => {
  test('a fire is named by its scheduled instant, even when the callback comes late', () => {
    const cron = new Cron('0 0 * * * *', { paused: true, timezone: 'Asia/Shanghai' });
    try {
      expect(scheduledInstant(cron, new Date('2026-05-01T10:00:00.004Z')).toISOString()).toBe(
        '2026-05-01T10:00:00.000Z',
      );
      expect(scheduledInstant(cron, new Date('2026-05-01T10:00:02.700Z')).toISOString()).toBe(
        '2026-05-01T10:00:00.000Z',
      );
    } finally {
      cron.stop();
    }
    const monthly = new Cron('0 0 0 1 * *', { paused: true, timezone: 'Asia/Shanghai' });
    try {
      // Midnight on 1 June in Shanghai is 16:00 UTC on 31 May.
      expect(scheduledInstant(monthly, new Date('2026-05-31T16:00:01.500Z')).toISOString()).toBe(
        '2026-05-31T16:00:00.000Z',
      );
    } finally {
      monthly.stop();
    }
  });

  test('schedule, reschedule, unschedule; nextRun in the configured zone', () => {
    const scheduler = new Scheduler(app.app.services.jobs.runner, 'Asia/Shanghai', silentLogger());
    const request = () => ({
      type: 'STRATEGY' as const,
      jobKey: 'probe',
      exclusive: true,
      handler: async () => undefined,
    });
    try {
      scheduler.schedule('probe', '0 0 8 * * *', request);
      const next = scheduler.nextRun('probe')!;
      expect(next.getUTCHours()).toBe(0);
      scheduler.schedule('probe', '0 0 9 * * *', request);
      expect(scheduler.nextRun('probe')!.getUTCHours()).toBe(1);
      expect(scheduler.scheduledKeys()).toEqual(['probe']);
      scheduler.unschedule('probe');
      expect(scheduler.nextRun('probe')).toBeNull();
      expect(scheduler.scheduledKeys()).toEqual([]);
    } finally {
      scheduler.stop();
    }
    scheduler.schedule('after-stop', '@daily', request);
    expect(scheduler.scheduledKeys()).toEqual([]);
  });
});
