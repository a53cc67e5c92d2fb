import type { MikroORM } from '@mikro-orm/postgresql';
import { isDomainError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { needsPush } from './effective-rules.js';
import { patchAuditDetails } from './permission-audit.store.js';
import type { KindSpec } from './permission-kinds.js';
import type { PushTask } from './permission-recompute.js';
import { loadEffective, markNotified } from './permission-store.js';

export interface PushSummary {
  pushed: number;
  failed: number;
  /** Nothing left to tell by the time the push ran (a concurrent push told it, or the record is gone). */
  skipped: number;
}

type PushOutcome = keyof PushSummary;

/** First half of the two-int advisory lock that orders the pushes of one employee and kind. */
const PUSH_LOCK_CLASS = 73_011_246;

/** Permission pushes in flight at once, for the whole process (bench/permissions.ts checks the bound). */
export const PUSH_CONCURRENCY = 8;

/**
 * Tells the gateway what recomputes decided (SPEC §6), after their commit, at most `concurrency`
 * calls at a time for the whole process, so a department-wide change does not flood the gateway.
 *
 * Each push runs in its own short transaction under an advisory lock on (kind, employee key) and
 * sends the effective value current at that moment, re-checking the push rule; so two recomputes of
 * one employee racing each other end with the gateway holding the latest value, and "last told" is
 * exactly what it was told. A failed call is logged, leaves "last told" unchanged (the next recompute
 * pushes again) and is recorded on the audit row.
 */
export class PermissionPusher {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly orm: MikroORM,
    private readonly gateway: GatewayClient,
    private readonly logger: Logger,
    private readonly concurrency = PUSH_CONCURRENCY,
  ) {}

  async push(tasks: readonly PushTask[]): Promise<PushSummary> {
    const summary: PushSummary = { pushed: 0, failed: 0, skipped: 0 };
    const outcomes = await Promise.all(tasks.map((task) => this.limited(() => this.pushOne(task))));
    for (const outcome of outcomes) summary[outcome] += 1;
    return summary;
  }

  private async pushOne(task: PushTask): Promise<PushOutcome> {
    const spec = task.spec as KindSpec<unknown>;
    try {
      return await this.orm.em.fork().transactional(async (em) => {
        await em.execute('select pg_advisory_xact_lock(?::int, hashtext(?))', [
          PUSH_LOCK_CLASS,
          `${spec.kind}:${task.key}`,
        ]);
        let value: unknown = task.fixedValue;
        if (value === undefined) {
          const current = (await loadEffective(em, spec, [task.key])).get(task.key);
          if (!current || !needsPush(current, current.notified, (a, b) => spec.equals(a, b))) {
            await patchAuditDetails(em, task.auditId, {
              gatewayNotified: false,
              skipped: current ? 'the gateway already has this value' : 'the effective record no longer exists',
            });
            return 'skipped';
          }
          value = current.value;
        }
        try {
          await spec.push(this.gateway, task.key, value);
        } catch (error) {
          this.logger.warn(
            { err: error, kind: spec.kind, employeeKey: task.key },
            'gateway push of a permission failed; the next recompute pushes again',
          );
          await patchAuditDetails(em, task.auditId, { gatewayNotified: false, gatewayError: describeError(error) });
          return 'failed';
        }
        if (task.fixedValue === undefined) await markNotified(em, spec, task.key, value);
        await patchAuditDetails(em, task.auditId, { gatewayNotified: true, pushedValue: value });
        return 'pushed';
      });
    } catch (error) {
      // The database failed around the push: "last told" may be stale, which only costs a repeat push.
      this.logger.error({ err: error, kind: spec.kind, employeeKey: task.key }, 'permission push bookkeeping failed');
      return 'failed';
    }
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    while (this.active >= this.concurrency) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.active += 1;
    try {
      return await work();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }
}

function describeError(error: unknown): string {
  return isDomainError(error) ? error.message : 'unexpected error';
}
