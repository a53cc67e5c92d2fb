import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { Clock } from '../../clock.js';
import type { EntityManager } from '../../db/orm.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import {
  type Connection,
  idAfterKey,
  type PageArgs,
  pageWindow,
  paginate,
  withKeyset,
} from '../../graphql/pagination.js';
import type { Logger } from '../../logger.js';
import { centsToDecimalString, decimalToCents } from '../../money.js';
import type { IdempotencyKeys, IdempotentCall } from '../idempotency/idempotency-keys.js';
import { cronProblem, nextFireTimes } from '../jobs/cron.js';
import type { JobRun } from '../jobs/job-run.entity.js';
import type { JobRequest, JobRunner } from '../jobs/job-runner.js';
import { type RunStart, replayedRun, runOfClaim, startRunOnce } from '../jobs/start-once.js';
import { parseCondition } from './condition/index.js';
import { nextRunCache } from './next-run-cache.js';
import { QuotaStrategy, type StoredStrategyType } from './strategy.entity.js';
import {
  type CreateStrategyInput,
  type ExecutionStatus,
  type StrategyExecutionObject,
  StrategyType,
  type UpdateStrategyInput,
} from './strategy.types.js';
import { executionPages } from './strategy-executions.js';
import { type StrategyJobs, strategyJobKey } from './strategy-jobs.js';
import { type StrategyPreview, type StrategyPreviewer } from './strategy-preview.js';
import { readStrategyAmount, type StrategyDraft, validateStrategyDraft } from './strategy-rules.js';

export interface StrategyFilter {
  enabled?: boolean | null;
  type?: StrategyType | null;
  nameContains?: string | null;
}

export interface ConditionValidationResult {
  valid: boolean;
  error: { message: string; position: number } | null;
  normalized: string | null;
}

export const MAX_CRON_PREVIEW = 50;
const MAX_NAME_FILTER_LENGTH = 200;

/** Strategy ids are bigserial: anything else names no strategy. */
export function parseStrategyId(id: string): string | null {
  return /^\d{1,18}$/.test(id) ? String(BigInt(id)) : null;
}

export function toStoredType(type: StrategyType): StoredStrategyType {
  return type === StrategyType.PERIODIC ? 'periodic' : 'single';
}

function notFound(id: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `strategy ${JSON.stringify(id)} does not exist`);
}

function nameTaken(name: string): DomainError {
  return new DomainError(ErrorCode.CONFLICT, `a strategy named ${JSON.stringify(name)} already exists`);
}

/** Fields of UpdateStrategyInput that may not be null (left out = unchanged). */
const NOT_NULLABLE = ['name', 'title', 'type', 'amount', 'condition', 'maxExecPerUser', 'enabled'] as const;

/**
 * Strategies (SPEC §4): CRUD with the rules of strategy-rules.ts, the condition and cron helpers of
 * the admin screens, executions, and runStrategy. Every change that touches scheduling tells the
 * schedule watcher before the mutation returns (when this instance runs schedules).
 */
export class StrategyService {
  private readonly changeListeners: (() => Promise<void>)[] = [];

  constructor(
    private readonly runner: JobRunner,
    /** The job handlers (scan, periodic fires, manual runs) that src/app.ts schedules and registers. */
    readonly jobs: StrategyJobs,
    private readonly previewer: StrategyPreviewer,
    private readonly settings: { timeZone: string },
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly keys: IdempotencyKeys,
  ) {}

  /** The schedule watcher listens here (src/app.ts startSchedules). */
  onChange(listener: () => Promise<void>): void {
    this.changeListeners.push(listener);
  }

  async createStrategy(em: EntityManager, actor: string, input: CreateStrategyInput): Promise<QuotaStrategy> {
    const draft = validateStrategyDraft(
      {
        name: input.name,
        title: input.title,
        type: toStoredType(input.type),
        amount: readStrategyAmount(input.amount),
        model: input.model ?? null,
        periodicExpr: input.periodicExpr ?? null,
        condition: input.condition,
        maxExecPerUser: input.maxExecPerUser ?? 0,
        validityDays: input.validityDays ?? null,
        enabled: input.enabled ?? true,
      },
      this.settings.timeZone,
    );
    const strategy = await this.saveNamed(draft.name, async () => {
      if (await em.count(QuotaStrategy, { name: draft.name })) throw nameTaken(draft.name);
      const now = new Date();
      const created = em.create(QuotaStrategy, { ...toColumns(draft), createdAt: now, updatedAt: now });
      await em.persistAndFlush(created);
      return created;
    });
    this.logger.info({ actor, strategyId: strategy.id, name: strategy.name }, 'strategy created');
    await this.changed();
    return strategy;
  }

  async updateStrategy(
    em: EntityManager,
    actor: string,
    id: string,
    input: UpdateStrategyInput,
  ): Promise<QuotaStrategy> {
    const strategyId = parseStrategyId(id);
    if (!strategyId) throw notFound(id);
    for (const field of NOT_NULLABLE) {
      if (input[field] === null) throw badInput(`${field} cannot be null; leave it out to keep its value`);
    }
    const amount = input.amount === undefined || input.amount === null ? undefined : readStrategyAmount(input.amount);
    const strategy = await this.saveNamed(input.name?.trim() ?? '', () =>
      em.transactional(async (tx) => {
        const current = await tx.findOne(QuotaStrategy, { id: strategyId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!current) throw notFound(id);
        const draft = validateStrategyDraft(
          {
            name: input.name ?? current.name,
            title: input.title ?? current.title,
            type: input.type ? toStoredType(input.type) : current.type,
            amount: amount ?? decimalToCents(current.amount),
            model: input.model === undefined ? (current.model ?? null) : input.model,
            periodicExpr: input.periodicExpr === undefined ? (current.periodicExpr ?? null) : input.periodicExpr,
            condition: input.condition ?? current.condition,
            maxExecPerUser: input.maxExecPerUser ?? current.maxExecPerUser,
            validityDays: input.validityDays === undefined ? (current.validityDays ?? null) : input.validityDays,
            enabled: input.enabled ?? current.status,
          },
          this.settings.timeZone,
        );
        if (
          draft.name !== current.name &&
          (await tx.count(QuotaStrategy, { name: draft.name, id: { $ne: strategyId } }))
        ) {
          throw nameTaken(draft.name);
        }
        tx.assign(current, { ...toColumns(draft), updatedAt: new Date() });
        await tx.flush();
        return current;
      }),
    );
    this.logger.info({ actor, strategyId, fields: Object.keys(input) }, 'strategy updated');
    await this.changed();
    return strategy;
  }

  async setEnabled(em: EntityManager, actor: string, id: string, enabled: boolean): Promise<QuotaStrategy> {
    const strategyId = parseStrategyId(id);
    if (!strategyId) throw notFound(id);
    const strategy = await em.transactional(async (tx) => {
      const current = await tx.findOne(QuotaStrategy, { id: strategyId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!current) throw notFound(id);
      tx.assign(current, { status: enabled, updatedAt: new Date() });
      await tx.flush();
      return current;
    });
    this.logger.info({ actor, strategyId, enabled }, enabled ? 'strategy enabled' : 'strategy disabled');
    await this.changed();
    return strategy;
  }

  /** Deletes the strategy and (foreign key cascade) its executions; audits keep its id and name. */
  async deleteStrategy(em: EntityManager, actor: string, id: string): Promise<boolean> {
    const strategyId = parseStrategyId(id);
    if (!strategyId) return false;
    const deleted = await em.nativeDelete(QuotaStrategy, { id: strategyId });
    if (deleted === 0) return false;
    this.logger.info({ actor, strategyId }, 'strategy deleted');
    await this.changed();
    return true;
  }

  async findStrategy(em: EntityManager, id: string): Promise<QuotaStrategy | null> {
    const strategyId = parseStrategyId(id);
    return strategyId ? em.findOne(QuotaStrategy, { id: strategyId }) : null;
  }

  /** Newest first. */
  async listStrategies(em: EntityManager, filter: StrategyFilter, page: PageArgs): Promise<Connection<QuotaStrategy>> {
    const nameContains = filter.nameContains ?? '';
    if (nameContains.length > MAX_NAME_FILTER_LENGTH) {
      throw badInput(`nameContains must be at most ${MAX_NAME_FILTER_LENGTH} characters`);
    }
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (filter.enabled !== undefined && filter.enabled !== null) {
      conditions.push('status = ?');
      params.push(filter.enabled);
    }
    if (filter.type) {
      conditions.push('type = ?');
      params.push(toStoredType(filter.type));
    }
    if (nameContains !== '') {
      // strpos, not LIKE: nothing the admin typed is a pattern character.
      conditions.push('strpos(lower(name), lower(?)) > 0');
      params.push(nameContains);
    }
    const where = conditions.length > 0 ? `where ${conditions.join(' and ')}` : '';
    return paginate(
      page,
      async (window) => {
        const afterId = idAfterKey(window);
        const page = withKeyset(where, afterId === null ? null : { sql: 'id < ?', params: [afterId] });
        const [rows, counted] = await Promise.all([
          em.execute<Record<string, unknown>[]>(
            `select * from quota_strategy ${page.sql} order by id desc limit ? offset ?`,
            [...params, ...page.params, window.fetchLimit, window.offset],
          ),
          em.execute<{ total: string | number }[]>(`select count(*) as total from quota_strategy ${where}`, params),
        ]);
        return { items: rows.map((row) => em.map(QuotaStrategy, row)), totalCount: Number(counted[0]?.total ?? 0) };
      },
      (strategy) => strategy.id,
    );
  }

  /** strategyExecutions: NOT_FOUND for a strategy that does not exist. */
  async listExecutions(
    em: EntityManager,
    id: string,
    status: ExecutionStatus | null,
    page: PageArgs,
  ): Promise<Connection<StrategyExecutionObject>> {
    const window = pageWindow(page);
    const strategyId = parseStrategyId(id);
    if (!strategyId || !(await em.count(QuotaStrategy, { id: strategyId }))) throw notFound(id);
    return (await executionPages(em, [strategyId], status, window)).get(strategyId)!;
  }

  /** The next fire of an enabled PERIODIC strategy, in the configured zone; null otherwise. */
  nextRunAt(strategy: QuotaStrategy): Date | null {
    if (strategy.type !== 'periodic' || !strategy.status || !strategy.periodicExpr) return null;
    try {
      // A page of strategies asks this once per strategy and request: the parsed pattern is cached.
      return nextRunCache.nextRun(strategy.periodicExpr, this.settings.timeZone, this.clock.now());
    } catch {
      return null;
    }
  }

  /** validateCron: the next `count` fire times (1–50), or INVALID_CRON. */
  validateCron(expression: string, count = 5): Date[] {
    if (!Number.isInteger(count) || count < 1 || count > MAX_CRON_PREVIEW) {
      throw badInput(`count must be between 1 and ${MAX_CRON_PREVIEW}, got ${count}`);
    }
    const problem =
      expression.length > 200 ? 'longer than 200 characters' : cronProblem(expression, this.settings.timeZone);
    if (problem)
      throw new DomainError(ErrorCode.INVALID_CRON, `${JSON.stringify(expression)} is not a valid cron: ${problem}`);
    return nextFireTimes(expression, this.settings.timeZone, count, this.clock.now());
  }

  validateCondition(expression: string): ConditionValidationResult {
    const parsed = parseCondition(expression, this.settings.timeZone);
    if (!parsed.ok)
      return {
        valid: false,
        error: { message: parsed.error.message, position: parsed.error.position },
        normalized: null,
      };
    return { valid: true, error: null, normalized: parsed.normalized };
  }

  previewCondition(expression: string, sample = 10): Promise<StrategyPreview> {
    return this.previewer.preview(expression, sample);
  }

  /**
   * runStrategy: one run of its own over all users (not exclusive: each call is a fire of its own),
   * returned RUNNING at once. With an idempotency key a repeated call answers with the first run.
   */
  async runStrategy(em: EntityManager, actor: string, id: string, idempotencyKey?: string): Promise<JobRun> {
    const call = idempotencyKey === undefined ? undefined : idempotentRun(actor, idempotencyKey, id);
    if (call) {
      const earlier = await this.keys.lookup(em, call);
      if (earlier) return replayedRun(em, earlier);
    }
    const strategy = await this.findStrategy(em, id);
    if (!strategy) throw notFound(id);
    if (!strategy.status) throw badInput(`strategy ${JSON.stringify(strategy.name)} is disabled; enable it to run it`);
    const request: JobRequest = {
      type: 'STRATEGY',
      jobKey: strategyJobKey(strategy.id),
      exclusive: false,
      trigger: 'MANUAL',
      strategyId: strategy.id,
      requestedBy: actor,
      handler: this.jobs.manualRun(strategy.id),
    };
    const attempt = async (transaction: EntityManager): Promise<RunStart> => {
      const start = runOfClaim(await this.runner.claimWithin(transaction, request));
      if (!start)
        throw new DomainError(ErrorCode.CONFLICT, 'the server is shutting down; run the strategy again later');
      return start;
    };
    if (!call) {
      const start = await attempt(this.runner.forkEntityManager());
      start.launch();
      return start.run;
    }
    return startRunOnce(this.keys, em, call, attempt);
  }

  /** Runs `save`, turning a unique violation on the name (a concurrent create or rename) into CONFLICT. */
  private async saveNamed<T>(name: string, save: () => Promise<T>): Promise<T> {
    try {
      return await save();
    } catch (error) {
      if (error instanceof UniqueConstraintViolationException) throw nameTaken(name);
      throw error;
    }
  }

  private async changed(): Promise<void> {
    for (const listener of this.changeListeners) {
      try {
        await listener();
      } catch (error) {
        // The poll of the schedule watcher catches up within seconds.
        this.logger.warn({ err: error }, 'could not resync strategy schedules after a change');
      }
    }
  }
}

function toColumns(draft: StrategyDraft) {
  return {
    name: draft.name,
    title: draft.title,
    type: draft.type,
    amount: centsToDecimalString(draft.amount),
    model: draft.model,
    periodicExpr: draft.periodicExpr,
    condition: draft.condition,
    maxExecPerUser: draft.maxExecPerUser,
    validityDays: draft.validityDays,
    status: draft.enabled,
  };
}

/** runStrategy's key: the same strategy id is the same request. */
function idempotentRun(actor: string, key: string, id: string): IdempotentCall {
  return { operation: 'runStrategy', principal: actor, key, request: { id } };
}
