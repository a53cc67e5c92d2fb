import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { Cents } from '../../money.js';
import type { GatewayCallOutcome } from '../gateway/gateway.client.js';
import type { ScanTypeName } from '../jobs/job-run.entity.js';
import type { AuditOperation } from '../quota/ledger.js';

/**
 * The server's Prometheus metrics, on a registry of its own (not prom-client's global one), so
 * several servers in one process — the tests run many — never share or collide on counters.
 *
 * The hooks below are what the rest of the server calls (GatewayClient's onCall, JobRunner's
 * onFinished, the Ledger's and QuotaSyncService's observers, the Apollo plugin). They never throw
 * and never do I/O: recording a metric cannot fail or slow down the thing it measures.
 *
 * Label values are bounded by construction: GraphQL operations are labelled by their root field
 * (a schema name, not the client's free-form operation name), outcomes by the contract's error codes,
 * gateway operations, job types and ledger operations by fixed enums.
 */

export interface MetricsOptions {
  /** prom-client's process metrics (CPU, memory, event loop, GC); off when METRICS_ENABLED=false. */
  defaultMetrics?: boolean;
}

/** Seconds; request and gateway latencies sit between a few ms and the 30 s gateway timeout. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds; a job run takes from milliseconds (nothing to do) to many minutes (a big scan). */
const JOB_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600];

export type JobRunStatus = 'SUCCEEDED' | 'FAILED';

export class Metrics {
  readonly registry = new Registry();

  private readonly graphqlRequests = new Counter({
    name: 'graphql_requests_total',
    help: 'GraphQL requests by operation (root field) and outcome ("ok" or the error code of the first error)',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly graphqlDuration = new Histogram({
    name: 'graphql_request_duration_seconds',
    help: 'Time from the start of a GraphQL request to its response, by operation (root field)',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  private readonly gatewayCalls = new Counter({
    name: 'gateway_calls_total',
    help: 'Calls to the AI gateway admin API by operation and outcome (ok/error), one per call after its retries',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly gatewayDuration = new Histogram({
    name: 'gateway_call_duration_seconds',
    help: 'Duration of AI gateway calls including retries and back-off, by operation',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  private readonly jobRuns = new Counter({
    name: 'job_runs_total',
    help: 'Job runs executed by this instance, by type and final status',
    labelNames: ['type', 'status'] as const,
    registers: [this.registry],
  });

  private readonly jobDuration = new Histogram({
    name: 'job_run_duration_seconds',
    help: 'Duration of job runs executed by this instance, by type',
    labelNames: ['type'] as const,
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  });

  private readonly ledgerChanges = new Counter({
    name: 'ledger_changes_total',
    help: 'Committed ledger changes (one audit row each) by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  /** Summed in integer cents and exported at scrape time, so the total stays exact to the cent. */
  private readonly ledgerCents = new Map<AuditOperation, Cents>();

  private readonly ledgerAmount = new Counter({
    name: 'ledger_amount_total',
    help: 'Quota units moved by committed ledger changes (absolute value), by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
    collect: () => this.exportLedgerAmounts(),
  });

  private readonly ledgerCorrections = new Counter({
    name: 'ledger_corrections_total',
    help: 'Users whose gateway total differed from the ledger and was corrected by quota sync',
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The exposition text for GET /metrics. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  recordGraphqlRequest(operation: string, outcome: string, durationMs: number): void {
    this.graphqlRequests.inc({ operation, outcome });
    this.graphqlDuration.observe({ operation }, durationMs / 1000);
  }

  /** GatewayClient's `onCall` option. */
  readonly onGatewayCall = (operation: string, outcome: GatewayCallOutcome, durationMs: number): void => {
    this.gatewayCalls.inc({ operation, outcome });
    this.gatewayDuration.observe({ operation }, durationMs / 1000);
  };

  /** JobRunner's `onFinished` option. */
  readonly onJobFinished = (type: ScanTypeName, status: JobRunStatus, durationMs: number): void => {
    this.jobRuns.inc({ type, status });
    this.jobDuration.observe({ type }, durationMs / 1000);
  };

  /** The Ledger's observer: once per committed audit row. */
  readonly ledgerObserver = {
    onLedgerChange: (operation: AuditOperation, amount: Cents): void => {
      this.ledgerChanges.inc({ operation });
      this.ledgerCents.set(operation, (this.ledgerCents.get(operation) ?? 0) + Math.abs(amount));
    },
  };

  /** QuotaSyncService's observer: once per corrected user. */
  readonly syncObserver = {
    onCorrection: (): void => {
      this.ledgerCorrections.inc();
    },
  };

  private exportLedgerAmounts(): void {
    this.ledgerAmount.reset();
    for (const [operation, cents] of this.ledgerCents) {
      // Whole cents / 100 is the nearest double to the decimal amount; no float sums are involved.
      this.ledgerAmount.inc({ operation }, cents / 100);
    }
  }
}
