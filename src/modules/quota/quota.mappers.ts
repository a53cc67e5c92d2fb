import { centsToAmount, decimalToCents } from '../../money.js';
import type { Batch } from './ledger.js';
import type { MonthlyUsageRow } from './monthly-usage.entity.js';
import type { UserQuotaView } from './quota.service.js';
import {
  type AuditDetailsObject,
  type AuditItemObject,
  AuditItemStatus,
  AuditOperation,
  type MonthlyUsageObject,
  type QuotaAuditObject,
  type QuotaBatchObject,
  type QuotaStatus,
  type UserQuotaObject,
} from './quota.types.js';
import type { QuotaAuditRow } from './quota-audit.entity.js';

/** Ledger values (cents, rows) to the contract's GraphQL shapes (Float amounts). */

export function toQuotaBatchObject(batch: Batch): QuotaBatchObject {
  return {
    id: batch.id,
    userId: batch.userId,
    amount: centsToAmount(batch.amount),
    expiryDate: batch.expiryDate,
    status: batch.status as QuotaStatus,
    createdAt: batch.createdAt,
  };
}

export function toUserQuotaObject(view: UserQuotaView): UserQuotaObject {
  return {
    userId: view.userId,
    totalQuota: centsToAmount(view.totalQuota),
    usedQuota: centsToAmount(view.usedQuota),
    remainingQuota: centsToAmount(view.remainingQuota),
    available: view.available.map((entry) => ({ amount: centsToAmount(entry.amount), expiryDate: entry.expiryDate })),
    isStar: view.isStar,
    batchList: view.batches.map(toQuotaBatchObject),
  };
}

export function toQuotaAuditObject(row: QuotaAuditRow): QuotaAuditObject {
  return {
    id: String(row.id),
    userId: row.userId,
    amount: centsToAmount(decimalToCents(row.amount)),
    operation: row.operation as AuditOperation,
    voucherCode: row.voucherCode ?? null,
    relatedUser: row.relatedUser ?? null,
    strategyId: row.strategyId === null || row.strategyId === undefined ? null : String(row.strategyId),
    strategyName: row.strategyName ?? null,
    reason: row.reason ?? null,
    expiryDate: row.expiryDate,
    details: parseAuditDetails(row.details, row.operation),
    createdAt: row.createdAt,
  };
}

export function toMonthlyUsageObject(row: MonthlyUsageRow): MonthlyUsageObject {
  return {
    userId: row.userId,
    yearMonth: row.yearMonth.trim(),
    usedQuota: centsToAmount(decimalToCents(row.usedQuota)),
    recordedAt: row.recordTime,
  };
}

/**
 * `quota_audit.details` is JSON text. Rows copied from the old system may hold other shapes; anything
 * that does not read as AuditDetails is answered as null rather than failing the whole list.
 */
export function parseAuditDetails(text: string | null | undefined, operation: string): AuditDetailsObject | null {
  if (!text) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(parsed) || !isRecord(parsed.summary) || !Array.isArray(parsed.items)) return null;
  const items: AuditItemObject[] = [];
  for (const raw of parsed.items) {
    const item = parseItem(raw);
    if (!item) return null;
    items.push(item);
  }
  const summary = parsed.summary;
  const op = typeof parsed.operation === 'string' ? parsed.operation : operation;
  if (!isEnumValue(AuditOperation, op)) return null;
  const count = (value: unknown, fallback: number) => (Number.isInteger(value) ? (value as number) : fallback);
  return {
    operation: op,
    summary: {
      totalAmount: typeof summary.totalAmount === 'number' ? summary.totalAmount : 0,
      totalItems: count(summary.totalItems, items.length),
      successfulItems: count(summary.successfulItems, items.filter((i) => i.status === 'SUCCESS').length),
      failedItems: count(summary.failedItems, items.filter((i) => i.status === 'FAILED').length),
      expiredItems: count(summary.expiredItems, items.filter((i) => i.status === 'EXPIRED').length),
      earliestExpiryDate: toDate(summary.earliestExpiryDate),
    },
    items,
  };
}

function parseItem(raw: unknown): AuditItemObject | null {
  if (!isRecord(raw) || typeof raw.amount !== 'number') return null;
  const expiryDate = toDate(raw.expiryDate);
  if (!expiryDate || !isEnumValue(AuditItemStatus, raw.status)) return null;
  return {
    amount: raw.amount,
    expiryDate,
    status: raw.status,
    failureReason: typeof raw.failureReason === 'string' ? raw.failureReason : null,
    originalQuota: typeof raw.originalQuota === 'number' ? raw.originalQuota : null,
    newQuota: typeof raw.newQuota === 'number' ? raw.newQuota : null,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isEnumValue<T extends Record<string, string>>(enumObject: T, value: unknown): value is T[keyof T] {
  return typeof value === 'string' && (Object.values(enumObject) as string[]).includes(value);
}

function toDate(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const date = new Date(value);
  return Number.isFinite(date.getTime()) ? date : null;
}
