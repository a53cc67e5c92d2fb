import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { JobRunner } from '../../src/modules/jobs/job-runner.js';
import { rootFieldLabel } from '../../src/modules/metrics/graphql-metrics.plugin.js';
import { Metrics } from '../../src/modules/metrics/metrics.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { parsePrometheusText, sampleValue } from './prometheus-text.js';

/** METRICS_ENABLED, the operation label, and metrics that never leak between servers or break callers. */

describe('METRICS_ENABLED', () => {
  const env = {
    DATABASE_URL: 'postgres://localhost/x',
    AUTH_JWT_SECRET: 'x'.repeat(32),
    VOUCHER_SIGNING_KEY: 'y'.repeat(32),
  };

  it('defaults to true and reads the usual boolean spellings', () => {
    expect(loadConfig(env).metricsEnabled).toBe(true);
    expect(loadConfig({ ...env, METRICS_ENABLED: 'false' }).metricsEnabled).toBe(false);
    expect(loadConfig({ ...env, METRICS_ENABLED: 'off' }).metricsEnabled).toBe(false);
    expect(loadConfig({ ...env, METRICS_ENABLED: 'TRUE' }).metricsEnabled).toBe(true);
  });

  it('refuses anything else, naming the variable', () => {
    expect(() => loadConfig({ ...env, METRICS_ENABLED: 'sometimes' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...env, METRICS_ENABLED: 'sometimes' })).toThrow(/^METRICS_ENABLED /);
  });
});

describe('a server with METRICS_ENABLED=false', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ label: 'metrics-off', env: { METRICS_ENABLED: 'false' } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('has no /metrics route, and everything else works', async () => {
    const response = await fetch(`${app.baseUrl}/metrics`);
    expect(response.status).toBe(404);
    expect((await response.json()) as unknown).toEqual({ error: 'no route for GET /metrics' });
    const health = await app.gql<{ health: { status: string } }>('{ health { status } }');
    expect(health.data?.health.status).toBe('ok');
  });

  it('records nothing: neither requests nor gateway calls reach the registry', async () => {
    // A request whose resolver calls the gateway (total and used).
    const quota = await app.gql('{ myQuota { totalQuota usedQuota } }', undefined, { token: app.userToken });
    expect(quota.errors).toBeUndefined();
    expect(app.simulator.calls().length).toBeGreaterThan(0);
    const samples = parsePrometheusText(await app.app.services.metrics.render());
    for (const name of ['graphql_requests_total', 'graphql_request_duration_seconds_count', 'gateway_calls_total']) {
      expect(samples.filter((sample) => sample.name === name)).toEqual([]);
    }
  });
});

describe('the operation label', () => {
  const label = (source: string) => {
    const document = parse(source);
    const operation = document.definitions.find((definition) => definition.kind === 'OperationDefinition');
    if (operation?.kind !== 'OperationDefinition') throw new Error('no operation');
    return rootFieldLabel(operation, document);
  };

  it('is the root field, whatever the operation is called', () => {
    expect(label('{ health { status } }')).toBe('health');
    expect(label('query AnyNameAtAll { myQuota { totalQuota } }')).toBe('myQuota');
    expect(label('mutation { transferOut(input: {receiverId: "x", items: []}) { voucherCode } }')).toBe('transferOut');
  });

  it('follows fragments and inline fragments at the root, and ignores aliases', () => {
    expect(label('query { ...Q } fragment Q on Query { health { status } }')).toBe('health');
    expect(label('query { ... on Query { viewer { userId } } }')).toBe('viewer');
    expect(label('{ a: health { status } b: health { version } }')).toBe('health');
  });

  it('is "multiple" for different root fields, and ignores __typename beside a real one', () => {
    expect(label('{ health { status } viewer { userId } }')).toBe('multiple');
    expect(label('{ __typename health { status } }')).toBe('health');
    expect(label('{ __typename }')).toBe('__typename');
  });

  it('survives a fragment cycle without looping', () => {
    expect(label('query { ...A } fragment A on Query { ...B } fragment B on Query { ...A health { status } }')).toBe(
      'health',
    );
  });
});

describe('Metrics', () => {
  it('keeps one registry per instance, so two servers in one process never share counters', async () => {
    const first = new Metrics({ defaultMetrics: false });
    const second = new Metrics({ defaultMetrics: false });
    first.onGatewayCall('getTotal', 'ok', 12);
    first.ledgerObserver.onLedgerChange('DEDUCT', -1_001);
    first.ledgerObserver.onLedgerChange('DEDUCT', -2);
    const one = parsePrometheusText(await first.render());
    const two = parsePrometheusText(await second.render());
    expect(sampleValue(one, 'gateway_calls_total', { operation: 'getTotal', outcome: 'ok' })).toBe(1);
    expect(sampleValue(two, 'gateway_calls_total', { operation: 'getTotal', outcome: 'ok' })).toBeUndefined();
    // Amounts are counted as positive quota units.
    expect(sampleValue(one, 'ledger_amount_total', { operation: 'DEDUCT' })).toBe(10.03);
    expect(sampleValue(one, 'ledger_changes_total', { operation: 'DEDUCT' })).toBe(2);
    // Without the default metrics there are no process series.
    expect(one.some((sample) => sample.name.startsWith('process_'))).toBe(false);
  });
});

describe('JobRunner onFinished', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ label: 'metrics-job-hook' });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('is told type, status and duration once per run, and a throwing hook does not change the run', async () => {
    const seen: [string, string, number][] = [];
    const runner = new JobRunner(app.app.services.orm, silentLogger(), {
      onFinished: (type, status, durationMs) => {
        seen.push([type, status, durationMs]);
        throw new Error('a broken metrics hook');
      },
    });
    const claim = await runner.start({
      type: 'SYNC_QUOTAS',
      jobKey: 'metrics-hook-test',
      exclusive: true,
      trigger: 'MANUAL',
      handler: async (execution) => execution.progress.succeeded(3),
    });
    if (!claim.started) throw new Error('the run was not claimed');
    await runner.waitFor(claim.run.id);
    expect(seen).toHaveLength(1);
    expect(seen[0]![0]).toBe('SYNC_QUOTAS');
    expect(seen[0]![1]).toBe('SUCCEEDED');
    expect(seen[0]![2]).toBeGreaterThanOrEqual(0);
    const rows = await app.app.services.orm.em
      .fork()
      .execute<{ status: string; succeeded: number }[]>('select status, succeeded from job_run where id = ?', [
        claim.run.id,
      ]);
    expect(rows[0]).toMatchObject({ status: 'SUCCEEDED', succeeded: 3 });
    await runner.stop(1_000);
  });
});
