import type { EntityManager } from '../../db/orm.js';
import {
  type Connection,
  type PageArgs,
  type PageWindow,
  pageWindow,
  timeIdAfterKey,
  timeIdKey,
  toConnection,
} from '../../graphql/pagination.js';
import { centsToAmount, decimalToCents } from '../../money.js';
import { ExecutionStatus, type StrategyExecutionObject } from './strategy.types.js';

/**
 * Reading executions: one strategy's page (strategyExecutions) and the pages of many strategies in
 * one round of queries (the `executions` field of a page of strategies, see ExecutionPageLoader).
 */

interface ExecutionRow {
  id: string | number;
  strategy_id: string | number;
  user_id: string;
  batch_number: string;
  status: 'processing' | 'completed' | 'failed';
  amount: string;
  expiry_date: Date | string;
  error: string | null;
  create_time: Date | string;
  update_time: Date | string;
  /** create_time in whole microseconds since the epoch: the cursor's key. */
  create_us: string;
}

const STATUS_TO_API = {
  processing: ExecutionStatus.PROCESSING,
  completed: ExecutionStatus.COMPLETED,
  failed: ExecutionStatus.FAILED,
} as const;

export function toStoredExecutionStatus(status: ExecutionStatus): 'processing' | 'completed' | 'failed' {
  return status.toLowerCase() as 'processing' | 'completed' | 'failed';
}

function toExecutionObject(row: ExecutionRow): StrategyExecutionObject {
  return {
    id: String(row.id),
    strategyId: String(row.strategy_id),
    userId: row.user_id,
    batchNumber: row.batch_number,
    status: STATUS_TO_API[row.status],
    amount: centsToAmount(decimalToCents(row.amount)),
    expiryDate: new Date(row.expiry_date),
    error: row.error,
    createdAt: new Date(row.create_time),
    updatedAt: new Date(row.update_time),
  };
}

/** Pages of executions of several strategies (newest first): one count query and one lateral query. */
export async function executionPages(
  em: EntityManager,
  strategyIds: string[],
  status: ExecutionStatus | null,
  window: PageWindow,
): Promise<Map<string, Connection<StrategyExecutionObject>>> {
  const ids = JSON.stringify([...new Set(strategyIds)]);
  const statusFilter = status ? 'and x.status = ?' : '';
  const statusParams = status ? [toStoredExecutionStatus(status)] : [];
  // The cursor carries the row's time and id, so a page follows it even if that row was deleted since
  // (a released claim).
  const after = timeIdAfterKey(window);
  const keyset =
    after === null
      ? ''
      : `and (x.create_time, x.id) < (timestamptz 'epoch' + ?::bigint * interval '1 microsecond', ?::bigint)`;
  const [counts, rows] = await Promise.all([
    em.execute<{ strategy_id: string | number; total: string | number }[]>(
      `select x.strategy_id, count(*) as total from quota_execute x
       where x.strategy_id in (select jsonb_array_elements_text(?::jsonb)::bigint) ${statusFilter}
       group by x.strategy_id`,
      [ids, ...statusParams],
    ),
    em.execute<ExecutionRow[]>(
      `select x.*, (extract(epoch from x.create_time) * 1000000)::bigint::text as create_us
       from (select jsonb_array_elements_text(?::jsonb)::bigint as id) s
       cross join lateral (
         select * from quota_execute x where x.strategy_id = s.id ${statusFilter} ${keyset}
         order by x.create_time desc, x.id desc limit ? offset ?
       ) x`,
      [
        ids,
        ...statusParams,
        ...(after === null ? [] : [after.epochMicroseconds, after.id]),
        window.fetchLimit,
        window.offset,
      ],
    ),
  ]);
  const totals = new Map(counts.map((row) => [String(row.strategy_id), Number(row.total)]));
  const items = new Map<string, StrategyExecutionObject[]>();
  const keys = new Map<string, string>();
  for (const row of rows) {
    keys.set(String(row.id), timeIdKey(row.create_us, String(row.id)));
    const execution = toExecutionObject(row);
    const list = items.get(execution.strategyId) ?? [];
    list.push(execution);
    items.set(execution.strategyId, list);
  }
  const pages = new Map<string, Connection<StrategyExecutionObject>>();
  for (const id of strategyIds) {
    pages.set(
      id,
      toConnection(items.get(id) ?? [], totals.get(id) ?? 0, window, (execution) => keys.get(execution.id)!),
    );
  }
  return pages;
}

/**
 * Batches the `executions` field over the strategies of one request: the calls made while GraphQL
 * resolves one list are gathered (until the event loop turns) and answered with one round of queries
 * per distinct set of arguments.
 */
export class ExecutionPageLoader {
  private readonly pending = new Map<
    string,
    {
      status: ExecutionStatus | null;
      window: PageWindow;
      waiters: {
        strategyId: string;
        resolve: (page: Connection<StrategyExecutionObject>) => void;
        reject: (error: unknown) => void;
      }[];
    }
  >();
  private scheduled = false;

  constructor(private readonly em: EntityManager) {}

  load(
    strategyId: string,
    status: ExecutionStatus | null,
    page: PageArgs,
  ): Promise<Connection<StrategyExecutionObject>> {
    const window = pageWindow(page);
    const key = `${status ?? ''}|${window.limit}|${window.offset}|${window.start}|${window.afterKey ?? ''}`;
    let group = this.pending.get(key);
    if (!group) {
      group = { status, window, waiters: [] };
      this.pending.set(key, group);
    }
    const waiters = group.waiters;
    const promise = new Promise<Connection<StrategyExecutionObject>>((resolve, reject) => {
      waiters.push({ strategyId, resolve, reject });
    });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return promise;
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.pending.values()];
    this.pending.clear();
    for (const group of groups) {
      executionPages(
        this.em,
        group.waiters.map((waiter) => waiter.strategyId),
        group.status,
        group.window,
      ).then(
        (pages) => {
          for (const waiter of group.waiters) waiter.resolve(pages.get(waiter.strategyId)!);
        },
        (error: unknown) => {
          for (const waiter of group.waiters) waiter.reject(error);
        },
      );
    }
  }
}
