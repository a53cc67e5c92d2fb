import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../clock.js';
import { isDomainError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { JobRun, type JobTrigger, type ScanTypeName } from './job-run.entity.js';

/**
 * Runs jobs exactly once across instances. A run is claimed by inserting its row: the unique index
 * on `fire_key` lets one instance win each scheduled fire, and the partial unique index on active
 * exclusive runs keeps a job from overlapping itself. A running job writes a heartbeat; a run whose
 * heartbeat stopped (its instance died) is marked FAILED by whoever looks next, which frees its job.
 */

export interface JobProgress {
  processed(count?: number): void;
  succeeded(count?: number): void;
  failed(count?: number): void;
}

export interface JobExecution {
  runId: string;
  type: ScanTypeName;
  trigger: JobTrigger;
  strategyId: string | null;
  /** The scheduled instant of a scheduled fire, else the time the run was requested. */
  firedAt: Date;
  /** Aborted on shutdown: stop at the next safe point (between users or chunks). */
  signal: AbortSignal;
  progress: JobProgress;
  logger: Logger;
}

export type JobHandler = (execution: JobExecution) => Promise<void>;

export interface JobRequest {
  type: ScanTypeName;
  jobKey: string;
  /** Exclusive runs do not start while another exclusive run of the same job key is active. */
  exclusive: boolean;
  trigger: JobTrigger;
  /** Scheduled fires: `<jobKey>@<instant>`, the claim across instances. */
  fireKey?: string;
  firedAt?: Date;
  strategyId?: string;
  requestedBy?: string;
  handler: JobHandler;
}

export type ClaimResult = { started: true; run: JobRun } | { started: false; activeRun: JobRun | null };

/** A claim made inside someone's transaction: `launch()` starts the run once that has committed. */
export interface PendingClaim {
  result: ClaimResult;
  launch(): void;
}

export interface JobRunnerOptions {
  heartbeatMs?: number;
  staleAfterMs?: number;
  counterFlushMs?: number;
  /** Called once when a run this instance executed has ended and been recorded — the metrics hook. */
  onFinished?(type: ScanTypeName, status: 'SUCCEEDED' | 'FAILED', durationMs: number): void;
  /**
   * The server's clock: a run that is not a scheduled fire is "fired" at the instant it was requested
   * by this clock, so everything a run derives from that instant (a strategy run's one batch number)
   * follows a settable clock in tests. A run's start, heartbeats, end and staleness are the database's time.
   */
  clock?: Clock;
}

interface RunCounters {
  processed: number;
  succeeded: number;
  failed: number;
}

interface ActiveRun {
  controller: AbortController;
  done: Promise<void>;
}

export class JobRunner {
  readonly instanceId = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly active = new Map<string, ActiveRun>();
  private readonly heartbeatMs: number;
  private readonly staleAfterMs: number;
  private readonly counterFlushMs: number;
  private readonly onFinished: JobRunnerOptions['onFinished'];
  private readonly clock: Clock | null;
  private stopping = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly logger: Logger,
    options: JobRunnerOptions = {},
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.staleAfterMs = options.staleAfterMs ?? 30_000;
    this.counterFlushMs = options.counterFlushMs ?? 1_000;
    this.onFinished = options.onFinished;
    this.clock = options.clock ?? null;
  }

  /**
   * Claims a run and starts it in the background. Returns the claimed row (RUNNING) at once, or,
   * when the claim lost, the active run of that job (null for a scheduled fire another instance took).
   */
  async start(request: JobRequest): Promise<ClaimResult> {
    const pending = await this.claimWithin(this.forkEntityManager(), request);
    pending.launch();
    return pending.result;
  }

  /**
   * The claim of `start` as part of the caller's transaction (an idempotency key is stored with it).
   * The run is executed only when the caller calls `launch()` after its commit: before that the row
   * is invisible to the run's own progress writes.
   */
  async claimWithin(em: EntityManager, request: JobRequest): Promise<PendingClaim> {
    if (this.stopping) return { result: { started: false, activeRun: null }, launch: () => {} };
    await this.reapStaleRuns();
    // Start, heartbeats and end are the database's time, so a run's times compare across instances.
    const rows = await em.execute<{ id: string }[]>(
      `insert into job_run (type, job_key, exclusive, fire_key, trigger, strategy_id, status, requested_by,
         instance_id, heartbeat_at, started_at)
       values (?, ?, ?, ?, ?, ?, 'RUNNING', ?, ?, now(), now())
       on conflict do nothing
       returning id`,
      [
        request.type,
        request.jobKey,
        request.exclusive,
        request.fireKey ?? null,
        request.trigger,
        request.strategyId ?? null,
        request.requestedBy ?? null,
        this.instanceId,
      ],
    );
    if (rows.length === 0) {
      const activeRun = request.exclusive
        ? await em.findOne(JobRun, { jobKey: request.jobKey, exclusive: true, status: { $in: ['QUEUED', 'RUNNING'] } })
        : null;
      return { result: { started: false, activeRun }, launch: () => {} };
    }
    const run = await em.findOneOrFail(JobRun, { id: String(rows[0]!.id) });
    // One instant per run: every part of the run that needs "when" reads this, not the clock again.
    const firedAt = request.firedAt ?? this.clock?.now() ?? new Date();
    return { result: { started: true, run }, launch: () => this.execute(run, { ...request, firedAt }) };
  }

  /** An EntityManager of the jobs' database for one claim outside any caller's transaction. */
  forkEntityManager(): EntityManager {
    return this.orm.em.fork();
  }

  /**
   * Marks runs whose instance stopped sending heartbeats as FAILED, freeing their job. Heartbeats are
   * written and judged by the database's clock: instances whose own clocks disagree by more than the
   * stale interval must not take each other's healthy runs for dead.
   */
  async reapStaleRuns(): Promise<number> {
    const em = this.orm.em.fork();
    const reaped = await em.execute<{ id: string }[]>(
      `update job_run set status = 'FAILED', finished_at = now(),
         error = 'INTERRUPTED: the instance running it stopped before it finished'
       where status in ('QUEUED', 'RUNNING')
         and (heartbeat_at is null or heartbeat_at < now() - make_interval(secs => ?))
       returning id`,
      [this.staleAfterMs / 1000],
    );
    if (reaped.length > 0)
      this.logger.warn({ runs: reaped.map((row) => row.id) }, 'marked abandoned job runs as failed');
    return reaped.length;
  }

  /** The runs this instance is executing now (for tests and shutdown). */
  get activeRunIds(): string[] {
    return [...this.active.keys()];
  }

  /** Waits until a run started here has finished. */
  async waitFor(runId: string): Promise<void> {
    await this.active.get(runId)?.done;
  }

  /**
   * Waits (up to the timeout) for every run of this instance to be recorded as ended — also those a
   * request claimed while the runner was stopping, which are recorded FAILED without running. Shutdown
   * calls it once HTTP has drained, before the database closes.
   */
  async settle(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.active.values()].map((run) => run.done)),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /**
   * Shutdown: abort running jobs (they stop at their next safe point), wait up to the timeout, and
   * mark what is still running as FAILED so no run stays RUNNING.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const run of this.active.values()) run.controller.abort();
    await this.settle(timeoutMs);
    const unfinished = [...this.active.keys()];
    if (unfinished.length > 0) {
      await this.orm.em.fork().execute(
        `update job_run set status = 'FAILED', finished_at = now(), error = 'INTERRUPTED: the server shut down'
           where id in (${unfinished.map(() => '?').join(', ')}) and status = 'RUNNING'`,
        unfinished,
      );
    }
    // Recorded as ended: settle() (after HTTP drained) must not wait for them a second time, and their
    // own late end write finds the row no longer RUNNING and leaves it.
    for (const runId of unfinished) this.active.delete(runId);
  }

  /**
   * Counters and a heartbeat (the database's clock) for a run still RUNNING. False when the row is no
   * longer RUNNING: ended by a reaper or by shutdown's mark, which a late write must not undo.
   */
  private async recordProgress(runId: string, counters: RunCounters): Promise<boolean> {
    const rows = await this.orm.em.fork().execute<{ id: string }[]>(
      `update job_run set processed = ?, succeeded = ?, failed = ?, heartbeat_at = now()
       where id = ? and status = 'RUNNING' returning id`,
      [counters.processed, counters.succeeded, counters.failed, runId],
    );
    return rows.length > 0;
  }

  /** Ends a run that is still RUNNING; false when something else already ended it. */
  private async recordEnd(
    runId: string,
    status: 'SUCCEEDED' | 'FAILED',
    error: string | null,
    counters?: RunCounters,
  ): Promise<boolean> {
    const rows = await this.orm.em.fork().execute<{ id: string }[]>(
      `update job_run set status = ?, error = ?, finished_at = now(), heartbeat_at = now(),
         processed = coalesce(?, processed), succeeded = coalesce(?, succeeded), failed = coalesce(?, failed)
       where id = ? and status = 'RUNNING' returning id`,
      [status, error, counters?.processed ?? null, counters?.succeeded ?? null, counters?.failed ?? null, runId],
    );
    return rows.length > 0;
  }

  private execute(run: JobRun, request: JobRequest & { firedAt: Date }): void {
    const controller = new AbortController();
    if (this.stopping) {
      // Claimed by a request that was still under way when shutdown began (stop() has already looked
      // at the active runs): recorded as ended without starting work on a database about to close.
      const done = this.recordEnd(run.id, 'FAILED', 'INTERRUPTED: the server was shutting down; the run did not start')
        .then(() => undefined)
        .catch((error) =>
          this.logger.error({ err: error, jobRunId: run.id }, 'could not record a run refused at shutdown'),
        )
        .finally(() => this.active.delete(run.id));
      this.active.set(run.id, { controller, done });
      return;
    }
    const counters = { processed: 0, succeeded: 0, failed: 0 };
    let dirty = false;
    const logger = this.logger.child({ jobRunId: run.id, job: request.jobKey });
    const bump =
      (key: keyof typeof counters) =>
      (count = 1) => {
        counters[key] += count;
        dirty = true;
      };
    const flush = async () => {
      dirty = false;
      if (await this.recordProgress(run.id, counters)) return;
      // Another instance took this run for dead (no heartbeat seen in time) and ended it: stop the work,
      // whose job may already be running again elsewhere.
      logger.warn('the run was marked ended by another instance; stopping it');
      controller.abort();
    };
    // Heartbeat and counters in one periodic write.
    let lastBeat = Date.now();
    const ticker = setInterval(() => {
      if (!dirty && Date.now() - lastBeat < this.heartbeatMs) return;
      lastBeat = Date.now();
      flush().catch((error) => logger.warn({ err: error }, 'could not record job progress'));
    }, this.counterFlushMs);
    ticker.unref();

    const started = performance.now();
    const done = (async () => {
      let status: 'SUCCEEDED' | 'FAILED' = 'SUCCEEDED';
      let error: string | null = null;
      try {
        await request.handler({
          runId: run.id,
          type: request.type,
          trigger: request.trigger,
          strategyId: request.strategyId ?? null,
          firedAt: request.firedAt,
          signal: controller.signal,
          progress: { processed: bump('processed'), succeeded: bump('succeeded'), failed: bump('failed') },
          logger,
        });
        if (controller.signal.aborted) {
          status = 'FAILED';
          error = 'INTERRUPTED: the server shut down before the run finished';
        }
      } catch (caught) {
        status = 'FAILED';
        error = describeJobError(caught, logger);
      } finally {
        clearInterval(ticker);
      }
      try {
        if (!(await this.recordEnd(run.id, status, error, counters))) {
          logger.warn({ status, error }, 'the run had already been marked ended elsewhere; that record is kept');
        }
      } catch (flushError) {
        logger.error({ err: flushError }, 'could not record the end of a job run');
      }
      logger.info({ status, ...counters, error }, 'job run finished');
      try {
        this.onFinished?.(request.type, status, performance.now() - started);
      } catch {
        // Metrics must never change how a run ends.
      }
    })().finally(() => this.active.delete(run.id));
    this.active.set(run.id, { controller, done });
  }
}

/** `CODE: message` for domain errors (SPEC §9); unexpected errors keep their details in the log only. */
function describeJobError(error: unknown, logger: Logger): string {
  if (isDomainError(error)) {
    return error.message.startsWith(`${error.code}:`) ? error.message : `${error.code}: ${error.message}`;
  }
  const errorId = randomUUID();
  logger.error({ err: error, errorId }, 'job run failed unexpectedly');
  return `INTERNAL_SERVER_ERROR: unexpected error (errorId ${errorId})`;
}
