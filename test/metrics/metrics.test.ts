import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import { amountToCents } from '../../src/money.js';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';
import { labelSets, type Sample, sampleValue, scrape } from './prometheus-text.js';

/**
 * GET /metrics (Prometheus text): the counters of GraphQL requests, gateway calls, job runs and
 * ledger changes move with what the server did, with the right labels, and only for what committed.
 */

const ZONE = 'Asia/Shanghai';
/** 10:00 on 15 March 2026 in Shanghai. */
const START = '2026-03-15T02:00:00.000Z';
/** 23:59:59 on the last day of March / April 2026 in Shanghai. */
const MAR = '2026-03-31T15:59:59.000Z';
const APR = '2026-04-30T15:59:59.000Z';

const clock = new SettableClock(ZONE, START);
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp({ label: 'metrics', clock });
  for (const id of ['m-giver', 'm-receiver', 'm-sync', 'm-expire', 'm-rollback']) {
    await app.app.services.orm.em
      .fork()
      .execute('insert into auth_users (id, name) values (?, ?)', [id, `Name of ${id}`]);
  }
});
afterAll(async () => {
  await app?.stop();
});
afterEach(async () => {
  app.simulator.clearFaults();
  await assertLedgerInvariants(app.app.services.orm.em.fork(), app.simulator);
});

function grant(userId: string, amount: number, expiry: string) {
  return app.app.services.quota.grantQuota(app.app.services.orm.em.fork(), {
    userId,
    amount: amountToCents(amount),
    expiryDate: new Date(expiry),
    actor: 'test',
  });
}

/** What a metric sample moved by between two scrapes (a missing sample counts as 0). */
function delta(before: Sample[], after: Sample[], name: string, labels: Record<string, string> = {}): number {
  return (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
}

async function triggerScanAndWait(type: string): Promise<{ id: string; status: string }> {
  const response = await app.gql<{ triggerScan: { id: string } }>(
    'mutation($type: ScanType!) { triggerScan(type: $type) { id } }',
    { type },
    { token: app.adminToken },
  );
  expect(response.errors).toBeUndefined();
  const runId = response.data!.triggerScan.id;
  await app.app.services.jobs.runner.waitFor(runId);
  const run = await app.gql<{ jobRun: { id: string; status: string } }>(
    'query($id: ID!) { jobRun(id: $id) { id status } }',
    { id: runId },
    { token: app.adminToken },
  );
  return run.data!.jobRun;
}

describe('GET /metrics', () => {
  it('answers the Prometheus text format without a token, with the process metrics', async () => {
    const response = await fetch(`${app.baseUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(text).toContain('# TYPE graphql_requests_total counter');
    expect(text).toContain('# TYPE graphql_request_duration_seconds histogram');
    expect(text).toContain('# TYPE gateway_calls_total counter');
    expect(text).toContain('# TYPE gateway_call_duration_seconds histogram');
    expect(text).toContain('# TYPE job_runs_total counter');
    expect(text).toContain('# TYPE job_run_duration_seconds histogram');
    expect(text).toContain('# TYPE ledger_changes_total counter');
    expect(text).toContain('# TYPE ledger_amount_total counter');
    expect(text).toContain('# TYPE ledger_corrections_total counter');
    // prom-client's default process metrics.
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('answers HEAD without a body and refuses other methods', async () => {
    const head = await fetch(`${app.baseUrl}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${app.baseUrl}/metrics`, { method: 'POST' });
    expect(post.status).toBe(404);
  });
});

describe('graphql_requests_total and graphql_request_duration_seconds', () => {
  it('count requests by root field and outcome, and time them', async () => {
    const before = await scrape(app.baseUrl);
    await app.gql('{ health { status } }');
    await app.gql('query Named { health { status } }');
    await app.gql('{ viewer { userId } }', {}, { token: app.userToken });
    await app.gql('{ jobRuns { id } }'); // no token
    await app.gql('{ jobRuns { id } }', {}, { token: app.userToken }); // not an admin
    await app.gql('{ health { status } '); // syntax error
    await app.gql('{ noSuchField }'); // validation error
    await app.gql('{ health { status } viewer { userId } }', {}, { token: app.userToken });
    await app.gql('{ __typename health { version } }');
    const after = await scrape(app.baseUrl);

    const requests = (labels: Record<string, string>) => delta(before, after, 'graphql_requests_total', labels);
    expect(requests({ operation: 'health', outcome: 'ok' })).toBe(3);
    expect(requests({ operation: 'viewer', outcome: 'ok' })).toBe(1);
    expect(requests({ operation: 'jobRuns', outcome: 'UNAUTHENTICATED' })).toBe(1);
    expect(requests({ operation: 'jobRuns', outcome: 'FORBIDDEN' })).toBe(1);
    expect(requests({ operation: 'invalid', outcome: 'BAD_USER_INPUT' })).toBe(2);
    expect(requests({ operation: 'multiple', outcome: 'ok' })).toBe(1);

    const timed = (operation: string) => delta(before, after, 'graphql_request_duration_seconds_count', { operation });
    expect(timed('health')).toBe(3);
    expect(timed('jobRuns')).toBe(2);
    expect(timed('invalid')).toBe(2);
    expect(delta(before, after, 'graphql_request_duration_seconds_bucket', { operation: 'health', le: '+Inf' })).toBe(
      3,
    );
    expect(delta(before, after, 'graphql_request_duration_seconds_sum', { operation: 'health' })).toBeGreaterThan(0);
    // The client's own operation name never becomes a label value.
    expect(labelSets(after, 'graphql_requests_total').some((labels) => labels.operation === 'Named')).toBe(false);
  });
});

describe('gateway_calls_total and gateway_call_duration_seconds', () => {
  it('count calls by operation and outcome, once per call after its retries', async () => {
    await grant('m-giver', 100, APR);
    const before = await scrape(app.baseUrl);
    const token = await app.token({ userId: 'm-giver' });

    const fine = await app.gql('{ myQuota { totalQuota usedQuota } }', {}, { token });
    expect(fine.errors).toBeUndefined();
    // 1 attempt + 3 retries, all failing: one failed call, not four.
    app.simulator.setFault('getTotal', { kind: 'status', status: 503, times: 4 });
    const failed = await app.gql('{ myQuota { totalQuota } }', {}, { token });
    expect(errorCode(failed)).toBe('GATEWAY_UNAVAILABLE');
    const after = await scrape(app.baseUrl);

    const calls = (labels: Record<string, string>) => delta(before, after, 'gateway_calls_total', labels);
    expect(calls({ operation: 'getTotal', outcome: 'ok' })).toBe(1);
    expect(calls({ operation: 'getTotal', outcome: 'error' })).toBe(1);
    expect(calls({ operation: 'getUsed', outcome: 'ok' })).toBe(2);
    expect(calls({ operation: 'getUsed', outcome: 'error' })).toBe(0);
    expect(delta(before, after, 'gateway_call_duration_seconds_count', { operation: 'getTotal' })).toBe(2);
    expect(
      delta(before, after, 'graphql_requests_total', { operation: 'myQuota', outcome: 'GATEWAY_UNAVAILABLE' }),
    ).toBe(1);
    expect(delta(before, after, 'graphql_requests_total', { operation: 'myQuota', outcome: 'ok' })).toBe(1);
  });
});

describe('ledger_changes_total and ledger_amount_total', () => {
  it('count grants, deductions and transfers by operation, with the amounts exact to the cent', async () => {
    const before = await scrape(app.baseUrl);
    await grant('m-giver', 200.1, APR);
    await grant('m-giver', 0.2, APR);
    const deducted = await app.gql(
      'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { id amount } }',
      { input: { userId: 'm-giver', amount: 30.25, reason: 'metrics test' } },
      { token: app.adminToken },
    );
    expect(deducted.errors).toBeUndefined();

    const giverToken = await app.token({ userId: 'm-giver' });
    const out = await app.gql<{ transferOut: { voucherCode: string } }>(
      'mutation($input: TransferOutInput!) { transferOut(input: $input) { voucherCode totalAmount } }',
      { input: { receiverId: 'm-receiver', items: [{ amount: 12.5, expiryDate: APR }] } },
      { token: giverToken },
    );
    expect(out.errors).toBeUndefined();
    const receiverToken = await app.token({ userId: 'm-receiver' });
    const redeemed = await app.gql<{ transferIn: { status: string } }>(
      'mutation($code: String!) { transferIn(voucherCode: $code) { status amount } }',
      { code: out.data!.transferOut.voucherCode },
      { token: receiverToken },
    );
    expect(redeemed.data?.transferIn.status).toBe('SUCCESS');
    const after = await scrape(app.baseUrl);

    const changes = (operation: string) => delta(before, after, 'ledger_changes_total', { operation });
    const amount = (operation: string) => sampleValue(after, 'ledger_amount_total', { operation });
    expect(changes('RECHARGE')).toBe(2);
    expect(changes('DEDUCT')).toBe(1);
    expect(changes('TRANSFER_OUT')).toBe(1);
    expect(changes('TRANSFER_IN')).toBe(1);
    // 100 (previous test) + 200.10 + 0.20: summed in cents, so no 300.29999999999995.
    expect(amount('RECHARGE')).toBe(300.3);
    expect(amount('DEDUCT')).toBe(30.25);
    expect(amount('TRANSFER_OUT')).toBe(12.5);
    expect(amount('TRANSFER_IN')).toBe(12.5);
  });

  it('does not count a change that rolled back', async () => {
    const before = await scrape(app.baseUrl);
    // The gateway refuses the total: the grant's transaction rolls back, nothing of it stays.
    app.simulator.setFault('setTotal', { kind: 'status', status: 400 });
    await expect(grant('m-rollback', 40, APR)).rejects.toMatchObject({ code: 'GATEWAY_UNAVAILABLE' });
    const refused = await app.gql(
      'mutation($input: DeductQuotaInput!) { deductQuota(input: $input) { id } }',
      { input: { userId: 'm-giver', amount: 1_000_000, reason: 'too much' } },
      { token: app.adminToken },
    );
    expect(errorCode(refused)).toBe('INSUFFICIENT_QUOTA');
    const after = await scrape(app.baseUrl);

    expect(delta(before, after, 'ledger_changes_total', { operation: 'RECHARGE' })).toBe(0);
    expect(delta(before, after, 'ledger_amount_total', { operation: 'RECHARGE' })).toBe(0);
    expect(delta(before, after, 'ledger_changes_total', { operation: 'DEDUCT' })).toBe(0);
    expect(delta(before, after, 'gateway_calls_total', { operation: 'setTotal', outcome: 'error' })).toBe(1);
  });
});

describe('job_runs_total, job_run_duration_seconds and ledger_corrections_total', () => {
  it('count a quota sync by type and status, and the users it corrected', async () => {
    await grant('m-sync', 50, APR);
    // The gateway lost the total; sync puts it back.
    app.simulator.setUser('m-sync', { total: 0 });
    const before = await scrape(app.baseUrl);
    const run = await triggerScanAndWait('SYNC_QUOTAS');
    expect(run.status).toBe('SUCCEEDED');
    const after = await scrape(app.baseUrl);

    expect(delta(before, after, 'job_runs_total', { type: 'SYNC_QUOTAS', status: 'SUCCEEDED' })).toBe(1);
    expect(delta(before, after, 'job_runs_total', { type: 'SYNC_QUOTAS', status: 'FAILED' })).toBe(0);
    expect(delta(before, after, 'job_run_duration_seconds_count', { type: 'SYNC_QUOTAS' })).toBe(1);
    expect(delta(before, after, 'ledger_corrections_total')).toBe(1);
    // A correction is not a ledger change: it writes no audit.
    expect(labelSets(after, 'ledger_changes_total')).toEqual(labelSets(before, 'ledger_changes_total'));
    expect(delta(before, after, 'gateway_calls_total', { operation: 'setTotal', outcome: 'ok' })).toBe(1);

    // Nothing left to correct: the run counts, the corrections do not move.
    await triggerScanAndWait('SYNC_QUOTAS');
    const again = await scrape(app.baseUrl);
    expect(delta(after, again, 'job_runs_total', { type: 'SYNC_QUOTAS', status: 'SUCCEEDED' })).toBe(1);
    expect(delta(after, again, 'ledger_corrections_total')).toBe(0);
  });

  it('count the monthly expiry and its EXPIRE changes', async () => {
    await grant('m-expire', 20, MAR);
    const before = await scrape(app.baseUrl);
    clock.set('2026-03-31T16:00:00.000Z'); // 00:00 on 1 April in Shanghai
    try {
      const run = await triggerScanAndWait('EXPIRE_QUOTAS');
      expect(run.status).toBe('SUCCEEDED');
    } finally {
      clock.set(START);
    }
    const after = await scrape(app.baseUrl);
    expect(delta(before, after, 'job_runs_total', { type: 'EXPIRE_QUOTAS', status: 'SUCCEEDED' })).toBe(1);
    expect(delta(before, after, 'ledger_changes_total', { operation: 'EXPIRE' })).toBe(1);
    expect(sampleValue(after, 'ledger_amount_total', { operation: 'EXPIRE' })).toBe(20);
  });

  it('count a failed run as FAILED', async () => {
    const before = await scrape(app.baseUrl);
    const claim = await app.app.services.jobs.runner.start({
      type: 'STRATEGY',
      jobKey: 'metrics-test-failing-job',
      exclusive: false,
      trigger: 'MANUAL',
      handler: async () => {
        throw new Error('this job fails on purpose');
      },
    });
    if (!claim.started) throw new Error('the run was not claimed');
    await app.app.services.jobs.runner.waitFor(claim.run.id);
    const after = await scrape(app.baseUrl);
    expect(delta(before, after, 'job_runs_total', { type: 'STRATEGY', status: 'FAILED' })).toBe(1);
    expect(delta(before, after, 'job_runs_total', { type: 'STRATEGY', status: 'SUCCEEDED' })).toBe(0);
    expect(delta(before, after, 'job_run_duration_seconds_count', { type: 'STRATEGY' })).toBe(1);
  });
});
