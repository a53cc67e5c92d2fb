import type { Clock } from '../../clock.js';
import { type Sql, sqlOf } from '../../db/driver-transaction.js';
import type { EntityManager } from '../../db/orm.js';
import { DomainError, ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToAmount } from '../../money.js';
import type { Viewer } from '../auth/token-verifier.js';
import type { EmployeeDirectory } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { IdempotencyKeys, IdempotentCall, StoredAnswer } from '../idempotency/idempotency-keys.js';
import {
  type AuditEntry,
  type AuditItemRecord,
  attributeUsageFifo,
  type Batch,
  type Ledger,
  toWholeSecond,
  type UserLedger,
} from '../quota/ledger.js';
import { starredProjects } from '../users/starred-projects.js';
import type { UserDirectory } from '../users/user-directory.js';
import {
  alreadyRedeemed,
  describeRedemption,
  outcomeBase,
  storeOutcome,
  type TransferInItemView,
  type TransferInOutcome,
} from './transfer-in-result.js';
import { readTransferOut, refusePassedExpiries, type TransferLine, type TransferOutRequest } from './transfer-input.js';
import { MAX_VOUCHER_CODE_LENGTH, type VoucherCodec, type VoucherItem, type VoucherPayload } from './voucher-codec.js';

/** Who gives: the token's user and its display claims (SPEC §1). */
export type VoucherGiver = Pick<Viewer, 'userId' | 'name' | 'phone' | 'github'>;

export interface TransferOutOutcome {
  voucherCode: string;
  receiverId: string;
  totalAmount: Cents;
  items: VoucherItem[];
}

export interface VoucherInfoView {
  valid: boolean;
  giverId: string | null;
  receiverId: string | null;
  items: VoucherItem[];
  issuedAt: Date | null;
  redeemed: boolean;
  redeemedAt: Date | null;
}

interface RedemptionRow {
  create_time: Date | string;
  result: string | null;
}

/** How far back an issue timestamp may move to keep two identical transfers' codes apart. */
const MAX_TIMESTAMP_STEPS = 600;
/** How much earlier than a voucher's timestamp its audit row may be stamped (clock skew allowance). */
const CODE_SCAN_MARGIN_SECONDS = 3600;

/**
 * Transfers between users through signed vouchers (SPEC §5): transferOut takes quota from the giver's
 * batches and returns a voucher; transferIn redeems it once into the receiver's batches. Each side is
 * one transaction under that user's ledger lock, and both end by writing the user's gateway total
 * absolutely (SPEC §8), so a failure anywhere leaves the ledger and the gateway as they were.
 */
export class VouchersService {
  constructor(
    private readonly ledger: Ledger,
    private readonly gateway: GatewayClient,
    private readonly directory: UserDirectory,
    private readonly employees: EmployeeDirectory,
    private readonly codec: VoucherCodec,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly keys: IdempotencyKeys,
  ) {}

  /**
   * Checks in the spec's order — the input (BAD_USER_INPUT), the receiver (USER_NOT_FOUND), a VALID
   * batch per expiry (QUOTA_NOT_FOUND), what FIFO leaves in it (INSUFFICIENT_QUOTA) — then debits the
   * batches, writes the TRANSFER_OUT audit, sets the giver's gateway total and returns the voucher.
   */
  async transferOut(
    em: EntityManager,
    giver: VoucherGiver,
    request: TransferOutRequest,
    idempotencyKey?: string,
  ): Promise<TransferOutOutcome> {
    const lines = readTransferOut(request, giver.userId);
    const receiverId = request.receiverId;
    const call: IdempotentCall | undefined =
      idempotencyKey === undefined
        ? undefined
        : {
            operation: 'transferOut',
            principal: giver.userId,
            key: idempotencyKey,
            request: { receiverId, lines: lines.map((line) => ({ amount: line.amount, expiryDate: line.expiryDate })) },
          };
    if (call) {
      // Before the clock and balance checks: a repeated call answers as the first did, whatever the
      // balance is now — and even once a batch it took from has expired.
      const earlier = await this.keys.lookup(sqlOf(em), call);
      if (earlier) return rememberedTransfer(earlier);
    }
    refusePassedExpiries(lines, this.clock);
    // The giver's used is read now, beside the directory, not under the ledger lock: the gateway
    // meters on its own, so a read under the lock is no fresher, and it would hold the lock for a
    // round trip. It only grows, except when expiry resets it (under the lock); a value read before
    // such a reset is higher than the truth, so it can only make the check stricter, never overdraw.
    const usedRead = settled(this.gateway.getUsed(giver.userId));
    const stars = await this.directory.findGithubStars([receiverId, giver.userId]);
    if (!stars.has(receiverId)) {
      throw new DomainError(
        ErrorCode.USER_NOT_FOUND,
        `Receiver ${JSON.stringify(receiverId)} is not in the user directory.`,
      );
    }
    const giverGithubStar = starredProjects(stars.get(giver.userId)).join(',');

    return this.ledger.withUserLedger(em, giver.userId, async (ledger) => {
      if (call) {
        const claim = await this.keys.claim(ledger.sql, call);
        if (!claim.claimed) return rememberedTransfer(claim.answer);
      }
      const batches = await ledger.validBatches();
      const sources = lines.map((line) => ({ line, batch: batchFor(batches, line) }));
      // Awaited only now, so the spec's order of refusals holds (receiver, batch, then the gateway).
      const used = await usedRead();
      const available = new Map(attributeUsageFifo(batches, used).map((entry) => [entry.batch.id, entry.available]));
      for (const { line, batch } of sources) {
        const left = available.get(batch.id) ?? 0;
        if (line.amount > left) {
          throw new DomainError(
            ErrorCode.INSUFFICIENT_QUOTA,
            `The batch expiring ${batch.expiryDate.toISOString()} has ${centsToAmount(left)} available, ` +
              `cannot transfer ${centsToAmount(line.amount)}.`,
          );
        }
      }

      const auditItems: AuditItemRecord[] = [];
      for (const { line, batch } of sources) {
        const newQuota = await ledger.debit(batch.id, line.amount);
        auditItems.push({
          amount: line.amount,
          expiryDate: batch.expiryDate,
          status: 'SUCCESS',
          originalQuota: batch.amount,
          newQuota,
        });
      }
      const items = sources.map(({ line, batch }) => ({ amount: line.amount, expiryDate: batch.expiryDate }));
      const totalAmount = items.reduce((sum, item) => sum + item.amount, 0);
      const payload: VoucherPayload = {
        giverId: giver.userId,
        giverName: giver.name ?? '',
        giverPhone: giver.phone ?? '',
        giverGithub: giver.github ?? '',
        giverGithubStar,
        receiverId,
        items,
        timestamp: Math.floor(this.clock.now().getTime() / 1000),
      };
      const voucherCode = await this.auditWithDistinctCode(ledger, payload, {
        operation: 'TRANSFER_OUT',
        amount: -totalAmount,
        expiryDate: items[0]!.expiryDate,
        items: auditItems,
        relatedUser: receiverId,
        actor: giver.userId,
      });
      const outcome: TransferOutOutcome = { voucherCode, receiverId, totalAmount, items };
      if (call) await this.keys.remember(ledger.sql, call, storedTransfer(outcome));
      await ledger.pushTotal();
      return outcome;
    });
  }

  /**
   * Redeems a voucher for the token's user: the credits, the TRANSFER_IN audit and the redemption row
   * (with its outcome) in one transaction under the receiver's ledger lock, then the gateway total.
   * The unique index on the code decides: a redemption that finds the code taken — committed by an
   * earlier call, or by a racing one while this one waited for the lock — rolls back everything it did
   * and answers ALREADY_REDEEMED with the original outcome. The row is written last, before the
   * gateway hears of anything, so the common case costs one statement for it, and a loser never
   * touches the gateway. A gateway failure rolls back the redemption with everything else.
   */
  async transferIn(em: EntityManager, receiverId: string, code: string): Promise<TransferInOutcome> {
    const now = this.clock.now();
    const payload = this.codec.decode(code, now);
    if (payload.receiverId !== receiverId) {
      throw new DomainError(ErrorCode.VOUCHER_NOT_FOR_USER, 'This voucher was issued to another user.');
    }

    let outcome: TransferInOutcome;
    try {
      outcome = await this.ledger.withUserLedger(em, receiverId, (ledger) =>
        this.redeem(ledger, code, payload, receiverId, now),
      );
    } catch (error) {
      // Whatever failed (the conflict on the code, or a credit the receiver's batches refuse), a voucher
      // redeemed before answers ALREADY_REDEEMED with its original outcome (SPEC §5): this attempt was
      // doomed anyway, and its rollback changed nothing.
      const earlier = await findRedemption(sqlOf(em), code);
      if (earlier) return alreadyRedeemed(code, payload, new Date(earlier.create_time), earlier.result);
      if (error instanceof RedeemedBefore)
        throw new Error('voucher redemption conflicted with a row that cannot be found');
      throw error;
    }
    if (outcome.amount > 0) await this.pushStarredProjects(em, receiverId, payload.giverGithubStar);
    return outcome;
  }

  private async redeem(
    ledger: UserLedger,
    code: string,
    payload: VoucherPayload,
    receiverId: string,
    now: Date,
  ): Promise<TransferInOutcome> {
    const items: TransferInItemView[] = [];
    const auditItems: AuditItemRecord[] = [];
    for (const item of payload.items) {
      const expiryDate = toWholeSecond(item.expiryDate);
      if (expiryDate.getTime() <= now.getTime()) {
        items.push({ amount: item.amount, expiryDate, success: false, isExpired: true, failureReason: 'EXPIRED' });
        auditItems.push({ amount: item.amount, expiryDate, status: 'EXPIRED', failureReason: 'EXPIRED' });
        continue;
      }
      const batch = await ledger.credit(expiryDate, item.amount);
      items.push({ amount: item.amount, expiryDate, success: true, isExpired: false, failureReason: null });
      auditItems.push({
        amount: item.amount,
        expiryDate,
        status: 'SUCCESS',
        originalQuota: batch.amount - item.amount,
        newQuota: batch.amount,
      });
    }
    const credited = items.filter((item) => item.success);
    const amount = credited.reduce((sum, item) => sum + item.amount, 0);
    await ledger.audit({
      operation: 'TRANSFER_IN',
      amount,
      // The earliest credited expiry; with nothing credited, the earliest of the voucher.
      expiryDate: earliest(credited.length > 0 ? credited : items),
      items: auditItems,
      voucherCode: code,
      relatedUser: payload.giverId,
      actor: receiverId,
    });
    const result: TransferInOutcome = {
      ...outcomeBase(code, payload),
      ...describeRedemption(credited.length, items.length - credited.length),
      amount,
      items,
    };
    const inserted = await ledger.sql.execute(
      `insert into voucher_redemption (voucher_code, receiver_id, create_time, result) values (?, ?, ?, ?)
       on conflict do nothing returning id`,
      [code, receiverId, now, storeOutcome(result)],
    );
    if (inserted.length === 0) throw new RedeemedBefore();
    // Nothing credited, nothing to tell the gateway (the total is unchanged).
    if (amount > 0) await ledger.pushTotal();
    return result;
  }

  /** What a code says, for its giver, its receiver or an admin. An undecodable code is `valid: false`. */
  async voucherInfo(em: EntityManager, viewer: Viewer, code: string): Promise<VoucherInfoView> {
    let payload: VoucherPayload;
    try {
      payload = this.codec.decode(code, this.clock.now());
    } catch (error) {
      if (error instanceof DomainError && error.code === ErrorCode.VOUCHER_INVALID) {
        return {
          valid: false,
          giverId: null,
          receiverId: null,
          items: [],
          issuedAt: null,
          redeemed: false,
          redeemedAt: null,
        };
      }
      throw error;
    }
    if (!viewer.isAdmin && viewer.userId !== payload.giverId && viewer.userId !== payload.receiverId) {
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        'Only the giver, the receiver or an administrator may read this voucher.',
      );
    }
    const redemption = await findRedemption(sqlOf(em), code);
    return {
      valid: true,
      giverId: payload.giverId,
      receiverId: payload.receiverId,
      items: payload.items,
      issuedAt: new Date(payload.timestamp * 1000),
      redeemed: redemption !== null,
      redeemedAt: redemption ? new Date(redemption.create_time) : null,
    };
  }

  /**
   * Encodes the voucher so that its code differs from every earlier voucher of this giver, and writes
   * the TRANSFER_OUT audit that records it. Two transfers with the same receiver and items in the same
   * second would otherwise get the same code, and the second one could never be redeemed (the code is
   * the redemption key). The payload format is the old system's, so the only free field is the
   * timestamp: it steps back a second until the code is new. The check and the audit are one statement
   * (auditNewVoucher), and the giver's ledger lock is held, so no concurrent transfer of the giver can
   * take the code meanwhile.
   */
  private async auditWithDistinctCode(
    ledger: UserLedger,
    payload: VoucherPayload,
    audit: Omit<AuditEntry, 'voucherCode'>,
  ): Promise<string> {
    for (let step = 0; step <= MAX_TIMESTAMP_STEPS; step++) {
      const timestamp = payload.timestamp - step;
      const voucherCode = this.codec.encode({ ...payload, timestamp });
      // transferIn refuses codes over the limit (SPEC §5), so such a voucher could never be redeemed:
      // refused here, in the transaction, so the debit rolls back with it.
      if (voucherCode.length > MAX_VOUCHER_CODE_LENGTH) throw voucherTooLong(voucherCode.length, payload);
      // A voucher's audit is written (clock time) after its timestamp was taken, never before, so
      // only the giver's recent audits can hold this code: the (user_id, create_time) index bounds
      // the look. The hour of margin covers clocks that disagree between instances.
      const issuedSince = new Date((timestamp - CODE_SCAN_MARGIN_SECONDS) * 1000);
      if (await ledger.auditNewVoucher({ ...audit, voucherCode }, issuedSince)) return voucherCode;
    }
    throw new DomainError(
      ErrorCode.CONFLICT,
      'Too many identical transfers in a short time; wait a moment and try again.',
    );
  }

  /** SPEC §5: the receiver gets the giver's starred projects on the gateway. Best effort, after commit. */
  private async pushStarredProjects(em: EntityManager, receiverId: string, giverGithubStar: string): Promise<void> {
    const projects = starredProjects(giverGithubStar);
    if (projects.length === 0) return;
    try {
      const key = await this.employees.starPushKey(em, receiverId);
      await this.gateway.setStarredProjects(key, projects);
    } catch (error) {
      this.logger.warn({ err: error, receiverId }, 'could not set the starred projects of a voucher receiver');
    }
  }
}

function voucherTooLong(length: number, payload: VoucherPayload): DomainError {
  const stars = starredProjects(payload.giverGithubStar).length;
  return new DomainError(
    ErrorCode.BAD_USER_INPUT,
    `This transfer's voucher would be ${length} characters long, and a voucher may have at most ` +
      `${MAX_VOUCHER_CODE_LENGTH}: it carries the giver's name, phone and GitHub account, their ` +
      `${stars} starred project(s) and one entry per item (${payload.items.length}). Nothing was transferred.`,
  );
}

/** The giver's VALID batch with the line's expiry (second precision), or QUOTA_NOT_FOUND. */
function batchFor(batches: Batch[], line: TransferLine): Batch {
  const batch = batches.find(
    (candidate) => toWholeSecond(candidate.expiryDate).getTime() === line.expiryDate.getTime(),
  );
  if (!batch) {
    throw new DomainError(
      ErrorCode.QUOTA_NOT_FOUND,
      `You have no valid quota batch expiring at ${line.expiryDate.toISOString()}.`,
    );
  }
  return batch;
}

function earliest(items: { expiryDate: Date }[]): Date {
  return new Date(Math.min(...items.map((item) => item.expiryDate.getTime())));
}

/** The voucher's redemption row was there (committed) when this redemption tried to write its own. */
class RedeemedBefore extends Error {}

async function findRedemption(sql: Sql, code: string): Promise<RedemptionRow | null> {
  // md5(…) = md5(?) uses the unique index; the plain comparison guards against a collision.
  const rows = await sql.execute<RedemptionRow>(
    'select create_time, result from voucher_redemption where md5(voucher_code) = md5(?) and voucher_code = ?',
    [code, code],
  );
  return rows[0] ?? null;
}

/** transferOut's answer as an idempotency key keeps it (cents and ISO instants). */
function storedTransfer(outcome: TransferOutOutcome): StoredAnswer {
  return {
    voucherCode: outcome.voucherCode,
    receiverId: outcome.receiverId,
    totalAmount: outcome.totalAmount,
    items: outcome.items.map((item) => ({ amount: item.amount, expiryDate: item.expiryDate.toISOString() })),
  };
}

function rememberedTransfer(answer: StoredAnswer): TransferOutOutcome {
  const items = answer.items as { amount: Cents; expiryDate: string }[];
  return {
    voucherCode: String(answer.voucherCode),
    receiverId: String(answer.receiverId),
    totalAmount: Number(answer.totalAmount) as Cents,
    items: items.map((item) => ({ amount: item.amount, expiryDate: new Date(item.expiryDate) })),
  };
}

/**
 * Starts an operation whose failure is to be reported later: returns what awaits its result (or
 * rethrows its error) without an unhandled rejection in between.
 */
function settled<T>(operation: Promise<T>): () => Promise<T> {
  operation.catch(() => undefined);
  return () => operation;
}
