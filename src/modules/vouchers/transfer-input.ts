import type { Clock } from '../../clock.js';
import { badInput } from '../../errors.js';
import { type Cents, centsToAmount, MAX_CENTS } from '../../money.js';
import { toWholeSecond } from '../quota/ledger.js';
import { requirePositiveAmount, requireUserId } from '../quota/quota-input.js';
import { MAX_VOUCHER_ITEMS } from './voucher-codec.js';

/** transferOut's input as the API gives it (validated here). */
export interface TransferOutRequest {
  receiverId: string;
  items: { amount: number; expiryDate: Date }[];
}

/** One batch to take from: the items of the request naming that expiry, summed. */
export interface TransferLine {
  /** The expiry at second precision (how batches are keyed). */
  expiryDate: Date;
  amount: Cents;
  /** The first item of the request naming this expiry (for messages). */
  item: number;
}

/**
 * The input checks of transferOut that need no database (SPEC §5, all BAD_USER_INPUT), in the spec's
 * order: receiver empty, receiver = giver, 0 or more than 20 items, an amount ≤ 0 or with more than
 * 2 decimals, an invalid expiry — and, once the caller has looked up its idempotency key, an expiry
 * already past (refusePassedExpiries): a retry of a transfer that succeeded must get its voucher, even
 * when it arrives after the batch expired. Returns the lines, items naming the same expiry summed,
 * earliest expiry first.
 */
export function readTransferOut(request: TransferOutRequest, giverId: string): TransferLine[] {
  const receiverId = requireUserId(request.receiverId, 'receiverId');
  if (receiverId === giverId) throw badInput('receiverId must be another user: you cannot transfer quota to yourself');
  const items = request.items ?? [];
  if (items.length === 0 || items.length > MAX_VOUCHER_ITEMS) {
    throw badInput(`items must hold 1 to ${MAX_VOUCHER_ITEMS} entries, got ${items.length}`);
  }
  const amounts = items.map((item, index) => requirePositiveAmount(item.amount, `items[${index}].amount`));
  // The TRANSFER_OUT audit records the sum, in a column as wide as any one amount.
  const total = amounts.reduce((sum, amount) => sum + amount, 0);
  if (total > MAX_CENTS) {
    throw badInput(`items add up to ${centsToAmount(total)}; a transfer moves at most ${centsToAmount(MAX_CENTS)}`);
  }
  const lines = new Map<number, TransferLine>();
  items.forEach((item, index) => {
    if (!(item.expiryDate instanceof Date) || !Number.isFinite(item.expiryDate.getTime())) {
      throw badInput(`items[${index}].expiryDate must be a valid date`);
    }
    const expiryDate = toWholeSecond(item.expiryDate);
    const line = lines.get(expiryDate.getTime());
    if (line) line.amount += amounts[index]!;
    else lines.set(expiryDate.getTime(), { expiryDate, amount: amounts[index]!, item: index });
  });
  return [...lines.values()].sort((a, b) => a.expiryDate.getTime() - b.expiryDate.getTime());
}

/** The last input check of transferOut, on readTransferOut's lines (earliest first): no expiry has passed. */
export function refusePassedExpiries(lines: readonly TransferLine[], clock: Clock): void {
  const earliest = lines[0];
  if (earliest && earliest.expiryDate.getTime() <= clock.now().getTime()) {
    throw badInput(`items[${earliest.item}].expiryDate ${earliest.expiryDate.toISOString()} has already passed`);
  }
}
