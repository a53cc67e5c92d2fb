import type { Clock } from '../../clock.js';
import type { AppConfig } from '../../config.js';
import { type Sql, sqlOf } from '../../db/driver-transaction.js';
import type { EntityManager } from '../../db/orm.js';
import { isSqlState, SqlState } from '../../db/sql-state.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import { type Connection, idAfterKey, type PageArgs, paginate } from '../../graphql/pagination.js';
import { LATEST_INSTANT } from '../../graphql/scalars.js';
import type { Logger } from '../../logger.js';
import { type Cents, centsToAmount, decimalToCents } from '../../money.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { IdempotencyKeys, IdempotentCall, StoredAnswer } from '../idempotency/idempotency-keys.js';
import { starredProjects } from '../users/starred-projects.js';
import type { UserDirectory } from '../users/user-directory.js';
import {
  type AuditItemRecord,
  type AuditOperation,
  attributeUsageFifo,
  type Batch,
  type Ledger,
  readValidBatches,
  toWholeSecond,
} from './ledger.js';
import { MonthlyUsageRow } from './monthly-usage.entity.js';
import { QuotaAuditRow } from './quota-audit.entity.js';
import {
  optionalRange,
  optionalReference,
  requireGrantTerms,
  requirePositiveAmount,
  requireReason,
  requireUserId,
} from './quota-input.js';

/** One grant: what a strategy (or any other source of new quota) adds to a user's ledger. */
export interface QuotaGrant {
  userId: string;
  amount: Cents;
  expiryDate: Date;
  strategyId?: string;
  strategyName?: string;
  /** Who granted: `strategy:<id>`, an admin's id, `seed`, … (recorded in the audit). */
  actor?: string;
  reason?: string;
}

export interface GrantOptions {
  /** Runs inside the grant's transaction before the gateway push (e.g. mark the execution COMPLETED). */
  inTransaction?: (sql: Sql) => Promise<void>;
}

export interface GrantResult {
  batch: Batch;
  /** The RECHARGE audit written. */
  auditId: string;
  /** The gateway total written: the user's new Σ VALID. */
  total: Cents;
}

export interface QuotaAvailabilityView {
  amount: Cents;
  expiryDate: Date;
}

export interface UserQuotaView {
  userId: string;
  totalQuota: Cents;
  usedQuota: Cents;
  remainingQuota: Cents;
  available: QuotaAvailabilityView[];
  /** VALID batches, FIFO order. */
  batches: Batch[];
  isStar: boolean | null;
}

/** deductQuota's input as the API gives it (validated here). */
export interface DeductQuotaRequest {
  userId: string;
  amount: number;
  reason: string;
  reference?: string | null;
}

export interface AuditFilter {
  operation?: AuditOperation | null;
  from?: Date | null;
  to?: Date | null;
}

/**
 * The ledger's business operations (SPEC §5): grants, the quota view, deductions, audits and monthly
 * usage. Every change runs through Ledger.withUserLedger; monthly expiry and quota sync live in
 * quota-expiry.service.ts and quota-sync.service.ts.
 */
export class QuotaService {
  constructor(
    private readonly ledger: Ledger,
    private readonly gateway: GatewayClient,
    private readonly directory: UserDirectory,
    private readonly config: Pick<AppConfig, 'githubStarRequiredRepo'>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly keys: IdempotencyKeys,
  ) {}

  /**
   * Adds `amount` to the user's VALID batch with that expiry (one batch per user and expiry), writes
   * a RECHARGE audit, runs `inTransaction`, and sets the gateway total to the new Σ VALID, all in one
   * transaction: if the gateway fails, nothing stays and GATEWAY_UNAVAILABLE is thrown.
   */
  async grantQuota(em: EntityManager, grant: QuotaGrant, options: GrantOptions = {}): Promise<GrantResult> {
    const userId = requireUserId(grant.userId);
    const expiryDate = requireGrantTerms(grant.amount, grant.expiryDate, this.clock.now());
    return this.ledger.withUserLedger(em, userId, async (ledger) => {
      const batch = await ledger.credit(expiryDate, grant.amount);
      const audit = await ledger.audit({
        operation: 'RECHARGE',
        amount: grant.amount,
        expiryDate: batch.expiryDate,
        items: [
          {
            amount: grant.amount,
            expiryDate: batch.expiryDate,
            status: 'SUCCESS',
            originalQuota: batch.amount - grant.amount,
            newQuota: batch.amount,
          },
        ],
        strategyId: grant.strategyId,
        strategyName: grant.strategyName,
        actor: grant.actor,
        reason: grant.reason,
      });
      await options.inTransaction?.(ledger.sql);
      const total = await ledger.pushTotal();
      return { batch, auditId: audit.id, total };
    });
  }

  /**
   * myQuota / userQuota: the gateway's counters, the FIFO view of what is left per batch, and the
   * batches themselves. A gateway failure answers GATEWAY_UNAVAILABLE.
   */
  async getUserQuota(em: EntityManager, userId: string): Promise<UserQuotaView> {
    requireUserId(userId);
    const [total, used, batches, isStar] = await Promise.all([
      this.gateway.getTotal(userId),
      this.gateway.getUsed(userId),
      readValidBatches(sqlOf(em), userId),
      this.isStar(userId),
    ]);
    const available = attributeUsageFifo(batches, used)
      .filter((entry) => entry.available > 0)
      .map((entry) => ({ amount: entry.available, expiryDate: entry.batch.expiryDate }));
    return {
      userId,
      totalQuota: total,
      usedQuota: used,
      remainingQuota: total - used,
      available,
      batches,
      isStar,
    };
  }

  /**
   * deductQuota [admin]: takes the amount FIFO from what is available (after the gateway's used is
   * attributed), reduces batches, writes a DEDUCT audit and sets the gateway total. A reference makes it
   * idempotent: the same reference again returns the first audit; with another user or amount it is a
   * CONFLICT. The partial unique index on DEDUCT references decides races. An idempotency key works
   * the same way for the caller who chose it, over all the arguments (stored with the deduction).
   */
  async deductQuota(
    em: EntityManager,
    actor: string,
    input: DeductQuotaRequest,
    idempotencyKey?: string,
  ): Promise<QuotaAuditRow> {
    const userId = requireUserId(input.userId);
    const amount = requirePositiveAmount(input.amount);
    const reason = requireReason(input.reason);
    const reference = optionalReference(input.reference);
    const call: IdempotentCall | undefined =
      idempotencyKey === undefined
        ? undefined
        : {
            operation: 'deductQuota',
            principal: actor,
            key: idempotencyKey,
            request: { userId, amount, reason, reference: reference ?? null },
          };
    if (call) {
      const earlier = await this.keys.lookup(sqlOf(em), call);
      if (earlier) return this.rememberedDeduction(sqlOf(em), em, earlier);
    }
    if (reference !== undefined) {
      const earlier = await this.findDeduction(sqlOf(em), em, reference);
      if (earlier) return this.replayDeduction(earlier, userId, amount);
    }
    await this.directory.requireById(userId);
    try {
      return await this.ledger.withUserLedger(em, userId, async (ledger) => {
        if (call) {
          // Waits here for a racing call with the key; then answers as it did.
          const claim = await this.keys.claim(ledger.sql, call);
          if (!claim.claimed) return this.rememberedDeduction(ledger.sql, em, claim.answer);
        }
        if (reference !== undefined) {
          // A deduction with this reference for this user may have committed while we waited for the lock.
          const earlier = await this.findDeduction(ledger.sql, em, reference);
          if (earlier) {
            const replayed = this.replayDeduction(earlier, userId, amount);
            // The key claimed above must hold an answer when this commits: a claim left without one
            // reads as "still in progress" to every retry until the key expires.
            if (call) await this.keys.remember(ledger.sql, call, { auditId: replayed.id });
            return replayed;
          }
        }
        const batches = await ledger.validBatches();
        const used = await this.gateway.getUsed(userId);
        const attribution = attributeUsageFifo(batches, used);
        const availableTotal = attribution.reduce((sum, entry) => sum + entry.available, 0);
        if (availableTotal < amount) {
          throw new DomainError(
            ErrorCode.INSUFFICIENT_QUOTA,
            `user ${JSON.stringify(userId)} has ${centsToAmount(availableTotal)} available, cannot deduct ${centsToAmount(amount)}`,
          );
        }
        let remaining = amount;
        const items: AuditItemRecord[] = [];
        for (const entry of attribution) {
          if (remaining === 0) break;
          const take = Math.min(entry.available, remaining);
          if (take === 0) continue;
          const left = await ledger.debit(entry.batch.id, take);
          items.push({
            amount: take,
            expiryDate: entry.batch.expiryDate,
            status: 'SUCCESS',
            originalQuota: entry.batch.amount,
            newQuota: left,
          });
          remaining -= take;
        }
        const written = await ledger.audit({
          operation: 'DEDUCT',
          amount: -amount,
          expiryDate: items[0]!.expiryDate,
          items,
          reason,
          reference,
          actor,
        });
        if (call) await this.keys.remember(ledger.sql, call, { auditId: written.id });
        await ledger.pushTotal();
        return em.map(QuotaAuditRow, written.row);
      });
    } catch (error) {
      // Another user's deduction took the reference first: the index refused ours, nothing changed.
      if (reference !== undefined && isSqlState(error, SqlState.uniqueViolation)) {
        const earlier = await this.findDeduction(sqlOf(em), em, reference);
        if (earlier) return this.replayDeduction(earlier, userId, amount);
      }
      throw error;
    }
  }

  /** A user's audits, newest first (id as tie-break), optionally by operation and an inclusive time range. */
  async listAudits(
    em: EntityManager,
    userId: string,
    filter: AuditFilter | null | undefined,
    page: PageArgs,
  ): Promise<Connection<QuotaAuditRow>> {
    requireUserId(userId);
    const range = optionalRange(filter?.from, filter?.to);
    const where: Record<string, unknown> = { userId };
    if (filter?.operation) where.operation = filter.operation;
    // Instants are compared at second precision (contract): `to` includes its whole second. The
    // second after 9999-12-31T23:59:59Z cannot be sent to PostgreSQL as ISO text (the query failed);
    // nothing is later than it anyway, so that bound is left out.
    const end = range.to ? toWholeSecond(range.to).getTime() + 1000 : null;
    const createdAt = {
      ...(range.from ? { $gte: toWholeSecond(range.from) } : {}),
      ...(end !== null && end <= LATEST_INSTANT.getTime() ? { $lt: new Date(end) } : {}),
    };
    if (Object.keys(createdAt).length > 0) where.createdAt = createdAt;
    return paginate(
      page,
      async (window) => {
        const rows = em
          .createQueryBuilder(QuotaAuditRow, 'a')
          .where(where)
          .orderBy({ createdAt: 'desc', id: 'desc' })
          .limit(window.fetchLimit)
          .offset(window.offset);
        const afterId = idAfterKey(window);
        if (afterId !== null) {
          // The cursor row's own time, read by the database (exact to the microsecond). Audits are never
          // deleted, so the row is always there (executions, which can be, carry the time in the cursor).
          rows.andWhere(
            '(a.create_time, a.id) < (select b.create_time, b.id from quota_audit b where b.id = ? and b.user_id = ?)',
            [afterId, userId],
          );
        }
        const [items, totalCount] = await Promise.all([rows.getResultList(), em.count(QuotaAuditRow, where)]);
        // A cursor naming none of this user's audits (another list's, or none) compared with NULL above
        // and gave an empty page, as if the list had ended: only then is the row looked for.
        if (afterId !== null && items.length === 0 && !(await this.isAuditOf(em, afterId, userId))) {
          throw badInput('after is not a valid cursor');
        }
        return { items, totalCount };
      },
      (audit) => audit.id,
    );
  }

  private async isAuditOf(em: EntityManager, auditId: string, userId: string): Promise<boolean> {
    const rows = await em
      .getConnection()
      .execute<{ found: boolean }[]>(
        'select exists (select 1 from quota_audit where id = ? and user_id = ?) as found',
        [auditId, userId],
      );
    return rows[0]!.found;
  }

  /** Recorded monthly usage of a user, newest month first. */
  async monthlyUsage(em: EntityManager, userId: string): Promise<MonthlyUsageRow[]> {
    requireUserId(userId);
    return em.find(MonthlyUsageRow, { userId }, { orderBy: { yearMonth: 'desc', id: 'desc' } });
  }

  /** null unless GITHUB_STAR_REQUIRED_REPO is set; then whether one starred project equals it. */
  private async isStar(userId: string): Promise<boolean | null> {
    const required = this.config.githubStarRequiredRepo;
    if (!required) return null;
    const stars = await this.directory.findGithubStars([userId]);
    return starredProjects(stars.get(userId)).includes(required);
  }

  /**
   * The deduction an idempotency key remembers. Read through `sql` — inside the ledger's transaction,
   * its own connection: asking the pool for a second one while holding one could starve it under load.
   */
  private async rememberedDeduction(sql: Sql, em: EntityManager, answer: StoredAnswer): Promise<QuotaAuditRow> {
    const rows = await sql.execute('select * from quota_audit where id = ?', [String(answer.auditId)]);
    if (!rows[0]) throw new Error(`the deduction ${String(answer.auditId)} an idempotency key remembers is gone`);
    return em.map(QuotaAuditRow, rows[0]);
  }

  private async findDeduction(sql: Sql, em: EntityManager, reference: string): Promise<QuotaAuditRow | null> {
    const rows = await sql.execute(`select * from quota_audit where operation = 'DEDUCT' and reference = ?`, [
      reference,
    ]);
    return rows[0] ? em.map(QuotaAuditRow, rows[0]) : null;
  }

  private replayDeduction(earlier: QuotaAuditRow, userId: string, amount: Cents): QuotaAuditRow {
    if (earlier.userId !== userId || decimalToCents(earlier.amount) !== -amount) {
      throw new DomainError(
        ErrorCode.CONFLICT,
        `reference ${JSON.stringify(earlier.reference)} was already used for another deduction`,
      );
    }
    this.logger.info({ userId, reference: earlier.reference, auditId: earlier.id }, 'deduction replayed');
    return earlier;
  }
}
