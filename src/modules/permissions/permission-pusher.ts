import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../clock.js';
import type { EntityManager } from '../../db/orm.js';
import { isDomainError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import { isGatewayError } from '../gateway/gateway.errors.js';
import { needsPush } from './effective-rules.js';
import { recordRemovalPushes, removalPushOwed } from './owed-removal-push.js';
import { patchAuditDetails } from './permission-audit.store.js';
import type { KindSpec } from './permission-kinds.js';
import type { PushTask, RecomputePush, RemovalPush } from './permission-recompute.js';
import { loadEffective, markNotified, markNotifiedUncertain } from './permission-store.js';
import {
  deleteRemovalPush,
  lockRemovalPush,
  markRemovalPushUncertain,
  updatePendingLastNotified,
} from './removal-push-outbox.js';

export interface PushSummary {
  pushed: number;
  failed: number;
  /** Nothing left to tell by the time the push ran (a concurrent push told it, or the record is gone). */
  skipped: number;
  /** Not tried: the pushes just before had all failed (the gateway looks down); still owed. */
  deferred: number;
}

type PushOutcome = keyof PushSummary;

/**
 * What one push will send, what to record once the gateway took it (which may find a removal push
 * now owed: `settle` returns it), and what to record when it failed in a way that may have landed
 * (`uncertain`); or why there is nothing to send.
 */
type Due =
  | { value: unknown; auditId: string; settle: () => Promise<RemovalPush | null>; uncertain: () => Promise<void> }
  | { skipped: string; auditId: string | null };

/** Whether an employee key is in the HR mirror (a removal push is owed only while it is not). */
export type EmployeePresence = (em: EntityManager, key: string) => Promise<boolean>;

/** First half of the two-int advisory lock that orders the pushes of one employee and kind. */
const PUSH_LOCK_CLASS = 73_011_246;

/** Permission pushes in flight at once, for the whole process (bench/permissions.ts checks the bound). */
export const PUSH_CONCURRENCY = 8;

/**
 * Tells the gateway what recomputes decided (SPEC §6), after their commit, at most PUSH_CONCURRENCY
 * calls at a time for the whole process, so a department-wide change does not flood the gateway.
 *
 * Each push runs in its own short transaction under an advisory lock on (kind, employee key) and
 * sends the effective value current at that moment, re-checking the push rule; so two recomputes of
 * one employee racing each other end with the gateway holding the latest value, and "last told" is
 * exactly what it was told. A failed call is logged, leaves "last told" unchanged (the next recompute
 * pushes again) and is recorded on the audit row.
 *
 * The pushes owed for employees removed by employee sync come from the permission_removal_push
 * outbox, under the same lock: the row is re-read (and locked) and sent only while the employee is
 * still absent, deleted once the gateway took it, and kept when the call fails (the next employee
 * sync sends every pending row again).
 *
 * The effective record is read without a row lock, so that an admin change touching it never waits
 * for a gateway call (up to the timeout × retries). The price: employee sync may delete the record
 * of a removed employee while its push is in flight, reading the "last told" from before it, and so
 * owe no removal push for the value this push then lands. `settle` notices (the record is gone when
 * it marks what was told) and records that debt in the outbox itself.
 */
export class PermissionPusher {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly orm: MikroORM,
    private readonly gateway: GatewayClient,
    private readonly logger: Logger,
    private readonly employeePresent: EmployeePresence,
    private readonly clock: Clock,
  ) {}

  /**
   * Sends the tasks, PUSH_CONCURRENCY at a time. Once PUSH_CONCURRENCY pushes in a row have failed the
   * gateway is down or hanging: the tasks not yet started are deferred rather than each waiting out
   * its timeouts — a backlog (a department-wide change, every push an employee sync owes) must not hold
   * the pusher, whose slots everyone shares, for hours. Deferred pushes stay owed as failed ones do
   * ("last told" unchanged, outbox rows kept): the next recompute or employee sync sends them. The
   * first PUSH_CONCURRENCY tasks go first, so a gateway that is down costs one round of them.
   */
  async push(tasks: readonly PushTask[]): Promise<PushSummary> {
    let failuresInARow = 0;
    const run = async (task: PushTask): Promise<PushOutcome> => {
      if (failuresInARow >= PUSH_CONCURRENCY) return this.defer(task);
      const outcome = await this.pushOne(task);
      if (outcome === 'failed') failuresInARow += 1;
      else if (outcome === 'pushed') failuresInARow = 0;
      return outcome;
    };
    const first = await Promise.all(tasks.slice(0, PUSH_CONCURRENCY).map((task) => this.limited(() => run(task))));
    const rest = await Promise.all(tasks.slice(PUSH_CONCURRENCY).map((task) => this.limited(() => run(task))));
    const summary: PushSummary = { pushed: 0, failed: 0, skipped: 0, deferred: 0 };
    for (const outcome of [...first, ...rest]) summary[outcome] += 1;
    if (summary.deferred > 0) {
      this.logger.warn(
        { ...summary },
        'permission pushes kept failing: the gateway looks down; the rest waits for the next recompute or employee sync',
      );
    }
    return summary;
  }

  /** A task not tried: its audit row says so; a removal push simply stays pending in the outbox. */
  private async defer(task: PushTask): Promise<'deferred'> {
    if (!task.removal) {
      await patchAuditDetails(this.orm.em.fork(), task.auditId, {
        gatewayNotified: false,
        deferred: 'the pushes before it all failed; the next recompute or employee sync tries again',
      }).catch((error: unknown) => this.logger.warn({ err: error }, 'could not mark a deferred push'));
    }
    return 'deferred';
  }

  private async pushOne(task: PushTask): Promise<PushOutcome> {
    const { outcome, removalOwed } = await this.pushInTransaction(task);
    // Sent right away rather than left to the next employee sync: the sync that removed the
    // employee may already have sent its pending rows (it did not wait for this push), and the
    // next one may be a day away — all that time the gateway would grant a former employee what
    // this push just told it. A sync sending the same row meanwhile is harmless: both take the push
    // lock and re-read the row, and the second finds it gone. Its outcome goes to its own audit row.
    if (removalOwed) await this.pushInTransaction(removalOwed);
    return outcome;
  }

  private async pushInTransaction(task: PushTask): Promise<{ outcome: PushOutcome; removalOwed: RemovalPush | null }> {
    const spec = task.spec as KindSpec<unknown>;
    const done = (outcome: PushOutcome, removalOwed: RemovalPush | null = null) => ({ outcome, removalOwed });
    try {
      return await this.orm.em.fork().transactional(async (em) => {
        await em.execute('select pg_advisory_xact_lock(?::int, hashtext(?))', [
          PUSH_LOCK_CLASS,
          `${spec.kind}:${task.key}`,
        ]);
        const due = task.removal ? await this.removalDue(em, spec, task.key) : await this.recomputeDue(em, spec, task);
        if ('skipped' in due) {
          if (due.auditId !== null) {
            await patchAuditDetails(em, due.auditId, { gatewayNotified: false, skipped: due.skipped });
          }
          return done('skipped');
        }
        try {
          await spec.push(this.gateway, task.key, due.value);
        } catch (error) {
          this.logger.warn(
            { err: error, kind: spec.kind, employeeKey: task.key, removal: task.removal === true },
            task.removal
              ? 'gateway push for a removed employee failed; kept in permission_removal_push, the next employee sync pushes again'
              : 'gateway push of a permission failed; the next recompute pushes again',
          );
          const mayHaveLanded = mayHaveApplied(error);
          if (mayHaveLanded) await due.uncertain();
          await patchAuditDetails(em, due.auditId, {
            gatewayNotified: false,
            gatewayError: describeError(error),
            ...(mayHaveLanded ? { mayHaveApplied: true } : {}),
          });
          return done('failed');
        }
        const removalOwed = await due.settle();
        await patchAuditDetails(em, due.auditId, { gatewayNotified: true, pushedValue: due.value });
        return done('pushed', removalOwed);
      });
    } catch (error) {
      // The database failed around the push: "last told" may be stale (or a removal push stays
      // pending), which only costs a repeat push.
      this.logger.error({ err: error, kind: spec.kind, employeeKey: task.key }, 'permission push bookkeeping failed');
      return done('failed');
    }
  }

  /** A recompute's push: the effective value now, if the push rule still calls for it. */
  private async recomputeDue(em: EntityManager, spec: KindSpec<unknown>, task: RecomputePush): Promise<Due> {
    const current = (await loadEffective(em, spec, [task.key])).get(task.key);
    if (!current || !needsPush(current, current, (a, b) => spec.equals(a, b))) {
      return {
        auditId: task.auditId,
        skipped: current ? 'the gateway already has this value' : 'the effective record no longer exists',
      };
    }
    return {
      value: current.value,
      auditId: task.auditId,
      settle: async () =>
        (await markNotified(em, spec, task.key, current.value))
          ? null
          : this.removedWhilePushing(em, spec, task.key, current.value),
      uncertain: () => markNotifiedUncertain(em, spec, task.key),
    };
  }

  /**
   * A push the gateway took found the employee's effective record gone: employee sync removed them
   * while the call was in flight, and its delete read the "last told" from before this push. If the
   * employee is still out of the HR mirror and what was just told is something removal clears
   * (SPEC §7, the rule the sync applies), that push is owed now: recorded in the outbox like the
   * sync's own (on the row the sync left, if it owed one already) and returned to be sent.
   */
  private async removedWhilePushing(
    em: EntityManager,
    spec: KindSpec<unknown>,
    key: string,
    told: unknown,
  ): Promise<RemovalPush | null> {
    if (!removalPushOwed(spec, { notified: told, uncertain: false })) return null;
    // Back in the mirror (a later sync brought them back): their recompute decides what is told.
    if (await this.employeePresent(em, key)) return null;
    if (!(await updatePendingLastNotified(em, spec, key, told))) {
      await recordRemovalPushes(
        em,
        [{ spec, key, told: { notified: told, uncertain: false } }],
        this.clock.now(),
        'the employee was removed while a push of this value was in flight',
      );
    }
    this.logger.info(
      { kind: spec.kind, employeeKey: key },
      'a permission push landed after employee sync removed the employee; the removal push now owed is recorded',
    );
    return { spec: spec as RemovalPush['spec'], key, removal: true };
  }

  /**
   * A removed employee's pending push, if it is still owed: the row still exists (locked until this
   * transaction ends) and the employee is still absent from the HR mirror.
   */
  private async removalDue(em: EntityManager, spec: KindSpec<unknown>, key: string): Promise<Due> {
    const pending = await lockRemovalPush(em, spec, key);
    // Sent by a concurrent push, or dropped by the sync that brought the employee back (which
    // recorded that on the audit row).
    if (!pending) return { auditId: null, skipped: 'no longer pending' };
    if (await this.employeePresent(em, key)) {
      // Back in the mirror without a sync dropping the row (e.g. written by the seed): nothing to clear.
      await deleteRemovalPush(em, spec, key);
      return { auditId: pending.auditId, skipped: 'the employee is back in the HR mirror' };
    }
    return {
      value: pending.value,
      auditId: pending.auditId,
      settle: async () => {
        await deleteRemovalPush(em, spec, key);
        return null;
      },
      uncertain: () => markRemovalPushUncertain(em, spec, key),
    };
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    while (this.active >= PUSH_CONCURRENCY) {
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

/**
 * Whether a failed push may have changed the gateway: a gateway error says so (SPEC §8: no answer, or
 * a 5xx); anything else thrown around the call is treated as if it might have.
 */
function mayHaveApplied(error: unknown): boolean {
  return !isGatewayError(error) || error.ambiguous;
}

function describeError(error: unknown): string {
  return isDomainError(error) ? error.message : 'unexpected error';
}
