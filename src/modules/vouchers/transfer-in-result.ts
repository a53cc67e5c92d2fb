import { type Cents, centsToAmount, decimalToCents } from '../../money.js';
import type { VoucherPayload } from './voucher-codec.js';

export type TransferInStatusName = 'SUCCESS' | 'PARTIAL_SUCCESS' | 'FAILED' | 'ALREADY_REDEEMED';

export interface TransferInItemView {
  amount: Cents;
  expiryDate: Date;
  success: boolean;
  isExpired: boolean;
  failureReason: string | null;
}

/** transferIn's answer (the contract's TransferInResult, amounts in cents). */
export interface TransferInOutcome {
  status: TransferInStatusName;
  message: string;
  voucherCode: string;
  giverId: string;
  giverName: string | null;
  giverPhone: string | null;
  giverGithub: string | null;
  receiverId: string;
  /** What was credited (for ALREADY_REDEEMED: what the original redemption credited). */
  amount: Cents;
  items: TransferInItemView[];
}

/** The original outcome as stored in `voucher_redemption.result` (JSON text, amounts as decimals). */
interface StoredOutcome {
  status: TransferInStatusName;
  message: string;
  amount: string;
  items: { amount: string; expiryDate: string; success: boolean; isExpired: boolean; failureReason: string | null }[];
}

/** The status and message of a first redemption, from how many items were credited. */
export function describeRedemption(
  credited: number,
  expired: number,
): { status: TransferInStatusName; message: string } {
  const total = credited + expired;
  if (expired === 0) return { status: 'SUCCESS', message: `All ${total} item(s) credited.` };
  if (credited === 0) {
    return {
      status: 'FAILED',
      message: `All ${total} item(s) had expired; nothing was credited and the voucher is used up.`,
    };
  }
  return {
    status: 'PARTIAL_SUCCESS',
    message: `${credited} of ${total} item(s) credited; ${expired} had expired and were lost.`,
  };
}

export function outcomeBase(code: string, payload: VoucherPayload) {
  return {
    voucherCode: code,
    giverId: payload.giverId,
    giverName: payload.giverName || null,
    giverPhone: payload.giverPhone || null,
    giverGithub: payload.giverGithub || null,
    receiverId: payload.receiverId,
  };
}

export function storeOutcome(outcome: TransferInOutcome): string {
  const stored: StoredOutcome = {
    status: outcome.status,
    message: outcome.message,
    // Decimal strings: exact, and readable by anyone looking at the table.
    amount: String(centsToAmount(outcome.amount)),
    items: outcome.items.map((item) => ({
      amount: String(centsToAmount(item.amount)),
      expiryDate: item.expiryDate.toISOString(),
      success: item.success,
      isExpired: item.isExpired,
      failureReason: item.failureReason,
    })),
  };
  return JSON.stringify(stored);
}

/**
 * The answer to a second (or losing concurrent) redemption: ALREADY_REDEEMED with the original
 * outcome. A redemption recorded without an outcome (adopted from the old system) repeats the
 * voucher's items, none of them credited by this call.
 */
export function alreadyRedeemed(
  code: string,
  payload: VoucherPayload,
  redeemedAt: Date,
  storedResult: string | null,
): TransferInOutcome {
  const base = outcomeBase(code, payload);
  const when = redeemedAt.toISOString();
  const stored = parseStored(storedResult);
  if (!stored) {
    return {
      ...base,
      status: 'ALREADY_REDEEMED',
      message: `This voucher was already redeemed at ${when}.`,
      amount: 0,
      items: payload.items.map((item) => ({
        amount: item.amount,
        expiryDate: item.expiryDate,
        success: false,
        isExpired: false,
        failureReason: 'ALREADY_REDEEMED',
      })),
    };
  }
  return {
    ...base,
    status: 'ALREADY_REDEEMED',
    message: `This voucher was already redeemed at ${when} (outcome then: ${stored.status}). ${stored.message}`,
    amount: decimalToCents(stored.amount),
    items: stored.items.map((item) => ({
      amount: decimalToCents(item.amount),
      expiryDate: new Date(item.expiryDate),
      success: item.success,
      isExpired: item.isExpired,
      failureReason: item.failureReason,
    })),
  };
}

function parseStored(text: string | null): StoredOutcome | null {
  if (!text) return null;
  try {
    const parsed = JSON.parse(text) as StoredOutcome;
    return Array.isArray(parsed.items) && typeof parsed.amount === 'string' ? parsed : null;
  } catch {
    return null;
  }
}
