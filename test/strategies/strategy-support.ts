import type { EntityManager } from '../../src/db/orm.js';
import type { TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';

/** Helpers shared by the strategy tests: directory users, strategies over GraphQL, waiting for runs. */

export const STRATEGY_FIELDS = `id name title type amount model periodicExpr condition maxExecPerUser validityDays enabled
  nextRunAt createdAt updatedAt`;

export interface StrategyView {
  id: string;
  name: string;
  title: string;
  type: 'SINGLE' | 'PERIODIC';
  amount: number;
  model: string | null;
  periodicExpr: string | null;
  condition: string;
  maxExecPerUser: number;
  validityDays: number | null;
  enabled: boolean;
  nextRunAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface JobRunView {
  id: string;
  type: string;
  status: string;
  processed: number;
  succeeded: number;
  failed: number;
  error: string | null;
}

export function em(app: TestApp): EntityManager {
  return app.app.services.orm.em.fork();
}

export interface DirectoryUser {
  id: string;
  vip?: number;
  company?: string | null;
  githubStar?: string | null;
  employeeNumber?: string | null;
  createdAt?: string | null;
  accessTime?: string | null;
}

/** Adds users to the directory with plain SQL, as the login system would. */
export async function addUsers(app: TestApp, users: DirectoryUser[]): Promise<void> {
  await em(app).execute(
    `insert into auth_users (id, name, vip, company, github_star, employee_number, created_at, access_time)
     select u.id, 'User ' || u.id, u.vip, u.company, u.github_star, u.employee_number, u.created_at, u.access_time
     from jsonb_to_recordset(?::jsonb) as u(id text, vip int, company text, github_star text, employee_number text,
       created_at timestamptz, access_time timestamptz)
     on conflict (id) do nothing`,
    [
      JSON.stringify(
        users.map((user) => ({
          id: user.id,
          vip: user.vip ?? 0,
          company: user.company ?? null,
          github_star: user.githubStar ?? null,
          employee_number: user.employeeNumber ?? null,
          created_at: user.createdAt ?? '2025-01-01T00:00:00Z',
          access_time: user.accessTime ?? null,
        })),
      ),
    ],
  );
}

/** `count` users named `<prefix>-001`…, all with the given attributes. */
export function numberedUsers(
  prefix: string,
  count: number,
  attributes: Omit<DirectoryUser, 'id'> = {},
): DirectoryUser[] {
  return Array.from({ length: count }, (_, index) => ({
    id: `${prefix}-${String(index + 1).padStart(3, '0')}`,
    ...attributes,
  }));
}

export interface StrategyInput {
  name: string;
  title?: string;
  type?: 'SINGLE' | 'PERIODIC';
  amount?: number;
  model?: string | null;
  periodicExpr?: string | null;
  condition?: string;
  maxExecPerUser?: number;
  validityDays?: number | null;
  enabled?: boolean;
}

export function strategyInput(input: StrategyInput): Record<string, unknown> {
  return { title: `Title of ${input.name}`, type: 'SINGLE', amount: 10, condition: 'true()', ...input };
}

export async function createStrategy(app: TestApp, input: StrategyInput): Promise<StrategyView> {
  const response = await app.gql<{ createStrategy: StrategyView }>(
    `mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { ${STRATEGY_FIELDS} } }`,
    { input: strategyInput(input) },
    { token: app.adminToken },
  );
  if (!response.data) throw new Error(`createStrategy failed: ${JSON.stringify(response.errors)}`);
  return response.data.createStrategy;
}

export async function runStrategy(app: TestApp, id: string): Promise<JobRunView> {
  const response = await app.gql<{ runStrategy: JobRunView }>(
    'mutation($id: ID!) { runStrategy(id: $id) { id type status processed succeeded failed error } }',
    { id },
    { token: app.adminToken },
  );
  if (!response.data) throw new Error(`runStrategy failed: ${JSON.stringify(response.errors)}`);
  return response.data.runStrategy;
}

export async function triggerScan(app: TestApp, type = 'STRATEGY'): Promise<JobRunView> {
  const response = await app.gql<{ triggerScan: JobRunView }>(
    'mutation($type: ScanType!) { triggerScan(type: $type) { id type status processed succeeded failed error } }',
    { type },
    { token: app.adminToken },
  );
  if (!response.data) throw new Error(`triggerScan failed: ${JSON.stringify(response.errors)}`);
  return response.data.triggerScan;
}

/** Waits until a run has finished (on whichever instance) and returns it as the API shows it. */
export async function waitForRun(app: TestApp, runId: string, timeoutMs = 20_000): Promise<JobRunView> {
  await app.app.services.jobs.runner.waitFor(runId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await app.gql<{ jobRun: JobRunView | null }>(
      'query($id: ID!) { jobRun(id: $id) { id type status processed succeeded failed error } }',
      { id: runId },
      { token: app.adminToken },
    );
    const run = response.data?.jobRun;
    if (run && run.status !== 'RUNNING' && run.status !== 'QUEUED') return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not finish: ${JSON.stringify(run)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function runAndWait(app: TestApp, strategyId: string): Promise<JobRunView> {
  const run = await runStrategy(app, strategyId);
  return waitForRun(app, run.id);
}

export interface ExecutionRow {
  id: string;
  user_id: string;
  status: string;
  fire_key: string;
  batch_number: string;
  expiry_date: Date;
  amount: string;
  error: string | null;
}

export async function executionsOf(app: TestApp, strategyId: string): Promise<ExecutionRow[]> {
  return em(app).execute<ExecutionRow[]>(
    `select id::text, user_id, status, fire_key, batch_number, expiry_date, amount::text, error
     from quota_execute where strategy_id = ? order by id`,
    [strategyId],
  );
}

/** Completed executions per user of a strategy. */
export async function completedPerUser(app: TestApp, strategyId: string): Promise<Record<string, number>> {
  const rows = await em(app).execute<{ user_id: string; n: string }[]>(
    `select user_id, count(*)::text as n from quota_execute where strategy_id = ? and status = 'completed'
     group by user_id order by user_id`,
    [strategyId],
  );
  return Object.fromEntries(rows.map((row) => [row.user_id, Number(row.n)]));
}

export async function rechargeAuditsOf(
  app: TestApp,
  strategyId: string,
): Promise<{ user_id: string; amount: string }[]> {
  return em(app).execute(
    `select user_id, amount::text from quota_audit where strategy_id = ? and operation = 'RECHARGE' order by user_id, id`,
    [strategyId],
  );
}

export function checkInvariants(app: TestApp): Promise<void> {
  return assertLedgerInvariants(em(app), app.simulator);
}

export async function strategyCount(app: TestApp): Promise<number> {
  const [row] = await em(app).execute<{ n: string }[]>('select count(*)::text as n from quota_strategy');
  return Number(row?.n ?? 0);
}
