import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateClientTypes } from '../../src/cli/client-codegen.js';
import { amountToCents } from '../../src/money.js';
import { startTestApp, type TestApp } from '../support/app.js';
import type {
  EffectivePermissionQuery,
  EffectivePermissionQueryVariables,
  HealthQuery,
  HealthQueryVariables,
  MyQuotaAuditsQuery,
  MyQuotaAuditsQueryVariables,
  StrategiesQuery,
  StrategiesQueryVariables,
  TransferOutMutation,
  TransferOutMutationVariables,
  ViewerQuotaQuery,
  ViewerQuotaQueryVariables,
} from './generated/graphql.js';
import type { AuditOperation } from './generated/schema.js';
import { operationDocument, type TypedRequest, typedClient } from './typed-request.js';

/**
 * The typed client: the checked-in generated types match what codegen makes from schema.graphql and
 * the operations now, and the operations run against a real server with those types.
 */

describe('test/client/generated', () => {
  it('is what npm run codegen generates now (run it when this fails)', async () => {
    const generated = await generateClientTypes();
    expect(Object.keys(generated).sort()).toEqual([
      'test/client/generated/graphql.ts',
      'test/client/generated/schema.ts',
    ]);
    for (const [file, content] of Object.entries(generated)) {
      const committed = await readFile(new URL(`../../${file}`, import.meta.url), 'utf8');
      expect(committed, `${file} is stale: run npm run codegen`).toBe(content);
    }
  });
});

describe('typed calls against a running server', () => {
  let app: TestApp;
  let giver: TypedRequest;
  let admin: TypedRequest;
  /** A whole second about 40 days ahead: batches are keyed by whole seconds. */
  const expiry = new Date(Math.floor((Date.now() + 40 * 86_400_000) / 1000) * 1000).toISOString();

  beforeAll(async () => {
    app = await startTestApp({ label: 'typed-client' });
    for (const id of ['tc-giver', 'tc-receiver']) {
      await app.app.services.orm.em
        .fork()
        .execute('insert into auth_users (id, name) values (?, ?)', [id, `Name ${id}`]);
    }
    await app.app.services.quota.grantQuota(app.app.services.orm.em.fork(), {
      userId: 'tc-giver',
      amount: amountToCents(100),
      expiryDate: new Date(expiry),
      actor: 'test',
    });
    giver = typedClient(app.baseUrl, await app.token({ userId: 'tc-giver', name: 'Giver' }));
    admin = typedClient(app.baseUrl, app.adminToken);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('Health', async () => {
    const response = await typedClient(app.baseUrl)<HealthQuery, HealthQueryVariables>(operationDocument('health'), {});
    expect(response.errors).toBeUndefined();
    const health: HealthQuery['health'] = response.data!.health;
    expect(health).toMatchObject({ status: 'ok', database: true });
    expect(typeof health.version).toBe('string');
  });

  it('ViewerQuota', async () => {
    const response = await giver<ViewerQuotaQuery, ViewerQuotaQueryVariables>(operationDocument('viewer-quota'), {});
    expect(response.errors).toBeUndefined();
    const viewer = response.data!.viewer;
    expect(viewer).toMatchObject({ userId: 'tc-giver', isAdmin: false, name: 'Giver' });
    expect(viewer.quota.totalQuota).toBe(100);
    expect(viewer.quota.batches.map((batch) => [batch.amount, batch.expiryDate, batch.status])).toEqual([
      [100, expiry, 'VALID'],
    ]);
  });

  it('TransferOut, then MyQuotaAudits pages through what it wrote', async () => {
    const variables: TransferOutMutationVariables = {
      input: { receiverId: 'tc-receiver', items: [{ amount: 25.5, expiryDate: expiry }] },
    };
    const out = await giver<TransferOutMutation, TransferOutMutationVariables>(
      operationDocument('transfer-out'),
      variables,
    );
    expect(out.errors).toBeUndefined();
    expect(out.data!.transferOut).toMatchObject({ receiverId: 'tc-receiver', totalAmount: 25.5 });
    expect(out.data!.transferOut.voucherCode.length).toBeGreaterThan(20);

    const firstPage = await giver<MyQuotaAuditsQuery, MyQuotaAuditsQueryVariables>(
      operationDocument('my-quota-audits'),
      { first: 1 },
    );
    expect(firstPage.errors).toBeUndefined();
    const page = firstPage.data!.myQuotaAudits;
    expect(page.totalCount).toBe(2);
    expect(page.pageInfo.hasNextPage).toBe(true);
    const newest: AuditOperation = page.nodes[0]!.operation;
    expect(newest).toBe('TRANSFER_OUT');
    expect(page.nodes[0]).toMatchObject({ amount: -25.5, relatedUser: 'tc-receiver' });

    const secondPage = await giver<MyQuotaAuditsQuery, MyQuotaAuditsQueryVariables>(
      operationDocument('my-quota-audits'),
      { first: 1, after: page.pageInfo.endCursor },
    );
    expect(secondPage.errors).toBeUndefined();
    expect(secondPage.data!.myQuotaAudits.nodes.map((node) => [node.operation, node.amount])).toEqual([
      ['RECHARGE', 100],
    ]);
    expect(secondPage.data!.myQuotaAudits.pageInfo.hasNextPage).toBe(false);

    const recharges = await giver<MyQuotaAuditsQuery, MyQuotaAuditsQueryVariables>(
      operationDocument('my-quota-audits'),
      { filter: { operation: 'RECHARGE' } },
    );
    expect(recharges.data!.myQuotaAudits.totalCount).toBe(1);
    expect(recharges.data!.myQuotaAudits.nodes[0]!.details?.summary).toEqual({
      totalAmount: 100,
      totalItems: 1,
      successfulItems: 1,
    });
  });

  it('Strategies', async () => {
    const created = await app.gql(
      'mutation($input: CreateStrategyInput!) { createStrategy(input: $input) { id } }',
      { input: { name: 'typed-client-welcome', title: 'Welcome', type: 'SINGLE', amount: 5, condition: 'true()' } },
      { token: app.adminToken },
    );
    expect(created.errors).toBeUndefined();
    const response = await admin<StrategiesQuery, StrategiesQueryVariables>(operationDocument('strategies'), {
      first: 10,
      filter: { nameContains: 'typed-client', type: 'SINGLE' },
    });
    expect(response.errors).toBeUndefined();
    expect(response.data!.strategies.totalCount).toBe(1);
    expect(response.data!.strategies.nodes[0]).toMatchObject({
      name: 'typed-client-welcome',
      type: 'SINGLE',
      amount: 5,
      enabled: true,
      periodicExpr: null,
      nextRunAt: null,
    });
  });

  it('EffectivePermission', async () => {
    const response = await admin<EffectivePermissionQuery, EffectivePermissionQueryVariables>(
      operationDocument('effective-permission'),
      { kind: 'STAR_CHECK', targetType: 'USER', targetIdentifier: 'tc-giver' },
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.effectivePermission).toMatchObject({
      kind: 'STAR_CHECK',
      targetIdentifier: 'tc-giver',
      enabled: false,
      source: 'DEFAULT',
      models: null,
    });
  });
});
