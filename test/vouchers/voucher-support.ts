import { expect } from 'vitest';
import { SettableClock } from '../../src/clock.js';
import type { EntityManager } from '../../src/db/orm.js';
import { amountToCents } from '../../src/money.js';
import { errorCode, type GraphqlResponse, type TestApp } from '../support/app.js';
import { assertLedgerInvariants } from '../support/ledger-invariants.js';

/** Helpers of the transfer tests: directory users, grants, GraphQL calls and "nothing changed" snapshots. */

export const ZONE = 'Asia/Shanghai';
/** 10:00 on 15 March 2026 in Shanghai. */
export const START = '2026-03-15T02:00:00.000Z';
/** 23:59:59 on the last day of March, April, May 2026 in Shanghai. */
export const MAR = '2026-03-31T15:59:59.000Z';
export const APR = '2026-04-30T15:59:59.000Z';
export const MAY = '2026-05-31T15:59:59.000Z';

export function testClock(): SettableClock {
  return new SettableClock(ZONE, START);
}

export function em(app: TestApp): EntityManager {
  return app.app.services.orm.em.fork();
}

export interface DirectoryUser {
  id: string;
  githubStar?: string | null;
  employeeNumber?: string | null;
}

let serial = 0;
/** A prefix no other test of the file uses, so tests sharing one database never see each other's users. */
export function uniqueId(label: string): string {
  serial += 1;
  return `${label}-${serial}-${Math.random().toString(36).slice(2, 7)}`;
}

export async function addDirectoryUsers(app: TestApp, users: DirectoryUser[]): Promise<void> {
  for (const user of users) {
    await em(app).execute('insert into auth_users (id, name, github_star, employee_number) values (?, ?, ?, ?)', [
      user.id,
      `Name of ${user.id}`,
      user.githubStar ?? null,
      user.employeeNumber ?? null,
    ]);
  }
}

/** A grant through the quota service (the real path: batch, RECHARGE audit, gateway total). */
export async function grant(app: TestApp, userId: string, amount: number, expiry: string): Promise<void> {
  await app.app.services.quota.grantQuota(em(app), {
    userId,
    amount: amountToCents(amount),
    expiryDate: new Date(expiry),
    actor: 'test',
  });
}

export async function batchesOf(app: TestApp, userId: string): Promise<{ amount: number; expiry: string }[]> {
  const rows = await em(app).execute<{ amount: string; expiry_date: Date }[]>(
    `select amount, expiry_date from quota where user_id = ? and status = 'VALID' order by expiry_date, id`,
    [userId],
  );
  return rows.map((row) => ({ amount: Number(row.amount), expiry: new Date(row.expiry_date).toISOString() }));
}

export interface AuditView {
  operation: string;
  amount: number;
  voucherCode: string | null;
  relatedUser: string | null;
  expiry: string;
  actor: string | null;
  details: {
    summary: Record<string, unknown>;
    items: Record<string, unknown>[];
  };
}

export async function auditsOf(app: TestApp, userId: string): Promise<AuditView[]> {
  const rows = await em(app).execute<
    {
      operation: string;
      amount: string;
      voucher_code: string | null;
      related_user: string | null;
      expiry_date: Date;
      actor: string | null;
      details: string;
    }[]
  >(
    `select operation, amount, voucher_code, related_user, expiry_date, actor, details
       from quota_audit where user_id = ? order by id`,
    [userId],
  );
  return rows.map((row) => ({
    operation: row.operation,
    amount: Number(row.amount),
    voucherCode: row.voucher_code,
    relatedUser: row.related_user,
    expiry: new Date(row.expiry_date).toISOString(),
    actor: row.actor,
    details: JSON.parse(row.details),
  }));
}

export async function redemptionCount(app: TestApp, code?: string): Promise<number> {
  const rows = await em(app).execute<{ n: string }[]>(
    code === undefined
      ? 'select count(*) as n from voucher_redemption'
      : 'select count(*) as n from voucher_redemption where voucher_code = ?',
    code === undefined ? [] : [code],
  );
  return Number(rows[0]!.n);
}

/** Everything a refused call must leave as it was: both users' ledgers, redemptions, gateway writes. */
export async function snapshot(app: TestApp, userIds: string[]): Promise<unknown> {
  const users: Record<string, unknown> = {};
  for (const id of userIds) {
    users[id] = {
      batches: await batchesOf(app, id),
      audits: await auditsOf(app, id),
      gateway: app.simulator.getUser(id),
    };
  }
  return { users, redemptions: await redemptionCount(app), employees: app.simulator.snapshot().employees };
}

/** Gateway writes received since the last clearCalls (route and parameters). */
export function gatewayWrites(app: TestApp): [string | null, Record<string, string>][] {
  return app.simulator.calls({ method: 'POST' }).map((call) => [call.route, call.params]);
}

export function checkInvariants(app: TestApp): Promise<void> {
  return assertLedgerInvariants(em(app), app.simulator);
}

export const TRANSFER_OUT = `
  mutation TransferOut($input: TransferOutInput!) {
    transferOut(input: $input) { voucherCode receiverId totalAmount items { amount expiryDate } }
  }`;

export const TRANSFER_IN = `
  mutation TransferIn($code: String!) {
    transferIn(voucherCode: $code) {
      status message voucherCode giverId giverName giverPhone giverGithub receiverId amount
      items { amount expiryDate success isExpired failureReason }
    }
  }`;

export const VOUCHER = `
  query Voucher($code: String!) {
    voucher(code: $code) { valid giverId receiverId items { amount expiryDate } issuedAt redeemed redeemedAt }
  }`;

export interface TransferOutData {
  transferOut: {
    voucherCode: string;
    receiverId: string;
    totalAmount: number;
    items: { amount: number; expiryDate: string }[];
  };
}

export interface TransferInData {
  transferIn: {
    status: string;
    message: string;
    voucherCode: string;
    giverId: string;
    giverName: string | null;
    giverPhone: string | null;
    giverGithub: string | null;
    receiverId: string;
    amount: number;
    items: { amount: number; expiryDate: string; success: boolean; isExpired: boolean; failureReason: string | null }[];
  };
}

export function transferOut(
  app: TestApp,
  token: string,
  receiverId: string,
  items: { amount: number; expiryDate: string }[],
): Promise<GraphqlResponse<TransferOutData>> {
  return app.gql<TransferOutData>(TRANSFER_OUT, { input: { receiverId, items } }, { token });
}

export function transferIn(app: TestApp, token: string, code: string): Promise<GraphqlResponse<TransferInData>> {
  return app.gql<TransferInData>(TRANSFER_IN, { code }, { token });
}

/** The voucher code of a transferOut that must succeed. */
export async function issueVoucher(
  app: TestApp,
  token: string,
  receiverId: string,
  items: { amount: number; expiryDate: string }[],
): Promise<string> {
  const response = await transferOut(app, token, receiverId, items);
  expect(response.errors).toBeUndefined();
  return response.data!.transferOut.voucherCode;
}

export function expectCode<T>(response: GraphqlResponse<T>, code: string): void {
  expect(errorCode(response as GraphqlResponse), JSON.stringify(response.errors)).toBe(code);
  expect(response.data).toBeNull();
}
