import { type Cents, centsToAmount } from '../../money.js';
import { type AuditEntry, type AuditItemRecord, attributeUsageFifo, type Batch } from './ledger.js';

/**
 * The monthly settlement of one user (SPEC §5 "Monthly expiry" 2), computed without side effects:
 * the gateway's `used` is attributed FIFO over all VALID batches; batches whose expiry has passed are
 * expired (whatever of them was not consumed is lost); still-valid batches are reduced by the
 * consumption attributed to them, so that after `used` is reset to 0 the invariant
 * total = Σ VALID still holds and the user keeps exactly what they had not spent.
 *
 * Worked example (expired 60 | valid 100+80 | total 240, used 150): FIFO gives 60 to the expired
 * batch and 90 to the 100-batch; the 60-batch expires, the 100-batch is settled to 10, the 80 stays.
 * Σ VALID 240 → 90, EXPIRE audit −150, gateway used 150 → 0, total → 90 (remaining 90 before and after).
 */
export interface ExpirySettlement {
  /** Batches to mark EXPIRED, with how much of each had been consumed. */
  expired: { batch: Batch; consumed: Cents }[];
  /** Still-valid batches to reduce by `consumed` (> 0). */
  settled: { batch: Batch; consumed: Cents }[];
  /** Σ VALID before and after. */
  before: Cents;
  after: Cents;
  /** The gateway's used to take back with a delta of −usedReset (0 = no call). */
  usedReset: Cents;
  /** The EXPIRE audit's details: every expired and every settled batch. */
  items: AuditItemRecord[];
  earliestExpiry: Date;
}

/** null when no VALID batch has expired by `now`: nothing to do (a second run finds nothing). */
export function planExpirySettlement(batches: Batch[], used: Cents, now: Date): ExpirySettlement | null {
  const attribution = attributeUsageFifo(batches, used);
  const isExpired = (batch: Batch) => batch.expiryDate.getTime() < now.getTime();
  const expired = attribution.filter((entry) => isExpired(entry.batch));
  if (expired.length === 0) return null;
  const settled = attribution.filter((entry) => !isExpired(entry.batch) && entry.consumed > 0);

  const before = batches.reduce((sum, batch) => sum + batch.amount, 0);
  const leaving =
    expired.reduce((sum, entry) => sum + entry.batch.amount, 0) +
    settled.reduce((sum, entry) => sum + entry.consumed, 0);

  const items: AuditItemRecord[] = [
    ...expired.map(
      (entry): AuditItemRecord => ({
        amount: entry.batch.amount,
        expiryDate: entry.batch.expiryDate,
        status: 'EXPIRED',
        originalQuota: entry.batch.amount,
        newQuota: 0,
      }),
    ),
    ...settled.map(
      (entry): AuditItemRecord => ({
        amount: entry.consumed,
        expiryDate: entry.batch.expiryDate,
        status: 'SUCCESS',
        originalQuota: entry.batch.amount,
        newQuota: entry.batch.amount - entry.consumed,
      }),
    ),
  ];

  return {
    expired: expired.map(({ batch, consumed }) => ({ batch, consumed })),
    settled: settled.map(({ batch, consumed }) => ({ batch, consumed })),
    before,
    after: before - leaving,
    usedReset: Math.max(0, used),
    items,
    earliestExpiry: expired[0]!.batch.expiryDate,
  };
}

/** The EXPIRE audit of a settlement (SPEC §5: −(Σ VALID before − Σ VALID after), every batch in its details). */
export function expiryAuditEntry(plan: ExpirySettlement, actor: string): AuditEntry {
  return {
    operation: 'EXPIRE',
    amount: plan.after - plan.before,
    expiryDate: plan.earliestExpiry,
    items: plan.items,
    reason: expiryReason(plan),
    actor,
  };
}

function expiryReason(plan: ExpirySettlement): string {
  const expiredCount = plan.expired.length;
  const settledAmount = plan.settled.reduce((sum, entry) => sum + entry.consumed, 0);
  const parts = [`monthly expiry: ${expiredCount} batch${expiredCount === 1 ? '' : 'es'} expired`];
  if (settledAmount > 0) parts.push(`${centsToAmount(settledAmount)} of consumption settled into valid batches`);
  if (plan.usedReset > 0) parts.push(`gateway used ${centsToAmount(plan.usedReset)} reset to 0`);
  return parts.join('; ');
}

/**
 * The row changes of many users' settlements, grouped by statement so a chunk of users is written
 * with a few set-based statements (see QuotaExpiryService): batches to mark EXPIRED, batches to
 * reduce, batches reduced to 0 (removed, as Ledger.debit does), and one EXPIRE audit per user.
 */
export interface SettlementRows {
  expire: string[];
  reduce: { id: string; consumed: Cents }[];
  remove: { id: string; amount: Cents }[];
  audits: { userId: string; entry: AuditEntry }[];
}

export function settlementRows(
  plans: readonly { userId: string; plan: ExpirySettlement }[],
  actor: string,
): SettlementRows {
  const rows: SettlementRows = { expire: [], reduce: [], remove: [], audits: [] };
  for (const { userId, plan } of plans) {
    for (const { batch } of plan.expired) rows.expire.push(batch.id);
    for (const { batch, consumed } of plan.settled) {
      if (consumed === batch.amount) rows.remove.push({ id: batch.id, amount: batch.amount });
      else rows.reduce.push({ id: batch.id, consumed });
    }
    rows.audits.push({ userId, entry: expiryAuditEntry(plan, actor) });
  }
  return rows;
}
