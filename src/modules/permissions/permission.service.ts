import type { MikroORM } from '@mikro-orm/postgresql';
import type { Clock } from '../../clock.js';
import type { EntityManager } from '../../db/orm.js';
import { badInput, DomainError, ErrorCode } from '../../errors.js';
import { type Connection, type PageArgs, paginate } from '../../graphql/pagination.js';
import type { Logger } from '../../logger.js';
import { type EmployeeDirectory, type EmployeeRef, MAX_IDENTIFIER_LENGTH } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { UserDirectory } from '../users/user-directory.js';
import { resolveEffective, type Subject } from './effective-rules.js';
import {
  PermissionKind,
  type PermissionSource,
  type StoredTargetType,
  sourceOf,
  TargetType,
  targetTypeOf,
  WhitelistAction,
} from './permission.enums.js';
import { type AuditFilter, listAudits, patchAuditDetails } from './permission-audit.store.js';
import { applyWhitelistAction, normalizeModelNames, parseTarget, type TargetInput } from './permission-input.js';
import { ALL_SPECS, type KindSpec, MODEL_SPEC, specFor, switchSpecFor } from './permission-kinds.js';
import { PermissionPusher, type PushSummary } from './permission-pusher.js';
import {
  owedPushes,
  type PushTask,
  type RecomputeCause,
  type RecomputePush,
  type RemovalPush,
  recomputeKind,
} from './permission-recompute.js';
import { findSetting, loadSettings, lockPermissions, type StoredSetting } from './permission-store.js';
import { PermissionSubjects } from './permission-subjects.js';
import { listRemovalPushes } from './removal-push-outbox.js';
import { applySettingChange } from './setting-change.js';

export interface PermissionServiceDeps {
  orm: MikroORM;
  gateway: GatewayClient;
  employees: EmployeeDirectory;
  directory: UserDirectory;
  clock: Clock;
  logger: Logger;
}

/** Who made a change; null for employee sync. */
export interface PermissionActor {
  userId: string;
}

export interface TargetArgs {
  user?: EmployeeRef | null;
  departmentName?: string | null;
}

export interface SetModelWhitelistArgs extends TargetArgs {
  models: string[];
  action?: WhitelistAction | null;
}

export interface SetSwitchArgs extends TargetArgs {
  kind: PermissionKind;
  enabled: boolean;
}

export interface ModelWhitelistView {
  targetType: TargetType;
  targetIdentifier: string;
  models: string[];
  updatedAt: Date | null;
}

export interface SwitchSettingView {
  kind: PermissionKind;
  targetType: TargetType;
  targetIdentifier: string;
  enabled: boolean;
  updatedAt: Date | null;
}

export interface EffectivePermissionView {
  kind: PermissionKind;
  targetType: TargetType;
  targetIdentifier: string;
  models: string[] | null;
  enabled: boolean | null;
  source: PermissionSource;
  sourceIdentifier: string | null;
}

export interface PermissionAuditView {
  id: string;
  operation: string;
  targetType: TargetType | null;
  targetIdentifier: string | null;
  details: Record<string, unknown> | null;
  createdAt: Date;
}

/** A target after validation: a user by employee key, or an existing department. */
type ResolvedTarget = { type: 'user'; key: string } | { type: 'department'; name: string };

const MAX_FILTER_LENGTH = 500;

/**
 * SPEC §6: explicit settings per user or department, the effective value per employee, the push
 * rules and the permission audit. Every change runs in one transaction under the permissions lock
 * (setting, its audit, the recompute of everyone it affects, their audits); the gateway is told
 * after the commit, and the mutation returns once it has been.
 */
export class PermissionService {
  readonly subjects: PermissionSubjects;
  private readonly pusher: PermissionPusher;

  constructor(private readonly deps: PermissionServiceDeps) {
    this.subjects = new PermissionSubjects(deps.employees, deps.directory);
    // Removal pushes are owed only by employee sync, which keys employees by employee number.
    const employeePresent = async (em: EntityManager, key: string) => (await deps.employees.find(em, key)) !== null;
    this.pusher = new PermissionPusher(
      deps.orm,
      deps.gateway,
      deps.logger.child({ component: 'permission-push' }),
      employeePresent,
      deps.clock,
    );
  }

  async setModelWhitelist(
    em: EntityManager,
    actor: PermissionActor,
    input: SetModelWhitelistArgs,
  ): Promise<ModelWhitelistView> {
    const target = parseTarget(input.user, input.departmentName);
    const names = normalizeModelNames(input.models);
    const action = input.action ?? WhitelistAction.SET;
    const { resolved, setting } = await this.changeSetting(
      em,
      actor,
      MODEL_SPEC,
      target,
      (current) => applyWhitelistAction(current?.value ?? [], action, names),
      { action, models: names },
    );
    return {
      ...targetView(resolved),
      models: setting?.value ?? [],
      updatedAt: setting?.updatedAt ?? null,
    };
  }

  async setSwitch(em: EntityManager, actor: PermissionActor, input: SetSwitchArgs): Promise<SwitchSettingView> {
    const spec = switchSpecFor(input.kind);
    const target = parseTarget(input.user, input.departmentName);
    if (typeof input.enabled !== 'boolean') throw badInput('enabled must be true or false');
    const { resolved, setting } = await this.changeSetting(em, actor, spec, target, () => input.enabled, {});
    return {
      kind: spec.kind,
      ...targetView(resolved),
      enabled: setting?.value ?? false,
      updatedAt: setting?.updatedAt ?? null,
    };
  }

  /** The explicit whitelist of a user or department, or null. */
  async modelWhitelist(em: EntityManager, args: TargetArgs): Promise<ModelWhitelistView | null> {
    const resolved = await this.resolveTarget(em, parseTarget(args.user, args.departmentName));
    const setting = await findSetting(em, MODEL_SPEC, ...storedTarget(resolved));
    return setting ? { ...targetView(resolved), models: setting.value, updatedAt: setting.updatedAt } : null;
  }

  /** The explicit switch setting of a user or department, or null. */
  async switchSetting(em: EntityManager, kind: PermissionKind, args: TargetArgs): Promise<SwitchSettingView | null> {
    const spec = switchSpecFor(kind);
    const resolved = await this.resolveTarget(em, parseTarget(args.user, args.departmentName));
    const setting = await findSetting(em, spec, ...storedTarget(resolved));
    return setting ? { kind, ...targetView(resolved), enabled: setting.value, updatedAt: setting.updatedAt } : null;
  }

  /**
   * The value in force and where it comes from, computed from the settings now (so it is right even
   * for an employee no recompute has reached yet). A USER identifier is an employee key or a user id;
   * a DEPARTMENT's value is what an employee directly in it with no setting of their own would get.
   */
  async effectivePermission(
    em: EntityManager,
    kind: PermissionKind,
    targetType: TargetType,
    targetIdentifier: string,
  ): Promise<EffectivePermissionView> {
    const spec = specFor(kind) as KindSpec<unknown>;
    const identifier = targetIdentifier.trim();
    if (identifier === '') throw badInput('targetIdentifier must not be empty');
    if (identifier.length > MAX_IDENTIFIER_LENGTH) {
      throw badInput(`targetIdentifier must be at most ${MAX_IDENTIFIER_LENGTH} characters`);
    }
    let subject: { key: string | null; departmentPath: string[] };
    let shownIdentifier: string;
    if (targetType === TargetType.USER) {
      const key = await this.resolveUserIdentifier(em, identifier);
      subject = await this.subjects.forKey(em, key);
      shownIdentifier = key;
    } else {
      subject = { key: null, departmentPath: await this.departmentPathTo(em, identifier) };
      shownIdentifier = identifier;
    }
    const settings = await loadSettings(em, spec, subject.key === null ? [] : [subject.key], subject.departmentPath);
    const effective = resolveEffective(subject, settings, (value) => spec.applies(value), spec.fallback);
    return {
      kind,
      targetType,
      targetIdentifier: shownIdentifier,
      models: kind === PermissionKind.MODEL ? (effective.value as string[]) : null,
      enabled: kind === PermissionKind.MODEL ? null : (effective.value as boolean),
      source: sourceOf(effective.source),
      sourceIdentifier: effective.sourceIdentifier,
    };
  }

  async permissionAudits(
    em: EntityManager,
    filter: AuditFilter,
    page: PageArgs,
  ): Promise<Connection<PermissionAuditView>> {
    for (const [name, value] of Object.entries(filter)) {
      if (typeof value === 'string' && value.length > MAX_FILTER_LENGTH) {
        throw badInput(`${name} must be at most ${MAX_FILTER_LENGTH} characters`);
      }
    }
    return paginate(
      page,
      async (window) => {
        const { items, totalCount } = await listAudits(em, filter, window);
        return {
          totalCount,
          items: items.map((row) => ({
            id: row.id,
            operation: row.operation,
            targetType: targetTypeOf(row.targetType),
            targetIdentifier: row.targetIdentifier,
            details: parseDetails(row.details),
            createdAt: row.createdAt,
          })),
        };
      },
      (audit) => audit.id,
    );
  }

  /**
   * Recomputes the three kinds for these subjects inside the caller's transaction (which must hold
   * the permissions lock) and returns the pushes owed after its commit.
   */
  async recompute(em: EntityManager, subjects: readonly Subject[], cause: RecomputeCause): Promise<PushTask[]> {
    const now = this.deps.clock.now();
    const tasks: PushTask[] = [];
    for (const spec of ALL_SPECS)
      tasks.push(...(await recomputeKind(em, spec as KindSpec<unknown>, subjects, cause, now)));
    return tasks;
  }

  /** Sends what recomputes decided; call after their transaction committed. */
  async push(tasks: readonly PushTask[]): Promise<PushSummary> {
    return this.pusher.push(tasks);
  }

  /**
   * Every push still owed for employees removed by employee sync (permission_removal_push): those of
   * the sync that just committed and those a failed call left behind. Hand them to `push`.
   */
  async pendingRemovalPushes(em: EntityManager): Promise<RemovalPush[]> {
    return (await listRemovalPushes(em)).map(({ spec, key }) => ({ spec, key, removal: true }));
  }

  /**
   * Every push SPEC §6 still owes (one statement per kind), each with its audit row: the backstop
   * for pushes that failed or were lost after their recompute committed. `onTheirWay`: tasks about
   * to be pushed anyway (this sync's recompute), left out. Hand the result to `push`.
   */
  async owedPushes(em: EntityManager, onTheirWay: readonly PushTask[]): Promise<RecomputePush[]> {
    const now = this.deps.clock.now();
    const tasks: RecomputePush[] = [];
    for (const spec of ALL_SPECS) {
      const skip = new Set(onTheirWay.filter((task) => task.spec.kind === spec.kind).map((task) => task.key));
      tasks.push(...(await owedPushes(em, spec as KindSpec<unknown>, skip, now)));
    }
    return tasks;
  }

  get clock(): Clock {
    return this.deps.clock;
  }

  get logger(): Logger {
    return this.deps.logger;
  }

  /**
   * The one path of every setting change: in one transaction under the permissions lock, resolve the
   * target, compare with the stored value (the same value → nothing at all),
   * store it, audit it and recompute everyone it affects; then push and record the outcome.
   */
  private async changeSetting<V>(
    em: EntityManager,
    actor: PermissionActor,
    spec: KindSpec<V>,
    target: TargetInput,
    nextValue: (current: StoredSetting<V> | null) => V,
    auditDetails: Record<string, unknown>,
  ): Promise<{ resolved: ResolvedTarget; setting: StoredSetting<V> | null }> {
    const outcome = await em.transactional(async (tx) => {
      // The lock first: an employee sync holds it until it commits, so the target is resolved against
      // what the sync left. Resolved before it, a target the sync was removing would pass, and its
      // setting would be stored (and pushed) after the sync had cleared that employee — for good.
      await lockPermissions(tx);
      const resolved = await this.resolveTarget(tx, target);
      const [targetType, targetIdentifier] = storedTarget(resolved);
      const applied = await applySettingChange(tx, this.subjects, {
        spec,
        targetType,
        targetIdentifier,
        nextValue,
        actor: actor.userId,
        auditDetails,
        now: this.deps.clock.now(),
      });
      return { resolved, ...applied };
    });

    if (outcome.auditId !== null) {
      const summary = await this.pusher.push(outcome.tasks);
      await patchAuditDetails(this.deps.orm.em.fork(), outcome.auditId, {
        gatewayNotified: summary.pushed > 0,
        gateway: summary,
      }).catch((error: unknown) => this.deps.logger.warn({ err: error }, 'could not record a push summary'));
    }
    return { resolved: outcome.resolved, setting: outcome.setting };
  }

  private async resolveTarget(em: EntityManager, target: TargetInput): Promise<ResolvedTarget> {
    if (target.type === 'user') {
      return { type: 'user', key: await this.deps.employees.resolveEmployeeKey(em, target.ref) };
    }
    if (!(await this.deps.employees.departmentExists(em, target.name))) throw departmentNotFound(target.name);
    return { type: 'department', name: target.name };
  }

  /** effectivePermission's USER identifier: an employee key, or a user id resolved to one. */
  private async resolveUserIdentifier(em: EntityManager, identifier: string): Promise<string> {
    if (this.deps.employees.syncEnabled && (await this.deps.employees.find(em, identifier))) return identifier;
    return this.deps.employees.resolveEmployeeKey(em, { userId: identifier });
  }

  /** The department's own path (root first, ending with it), as some employee under it has it. */
  private async departmentPathTo(em: EntityManager, name: string): Promise<string[]> {
    const path = await this.deps.employees.pathToDepartment(em, name);
    if (!path) throw departmentNotFound(name);
    return path;
  }
}

function storedTarget(target: ResolvedTarget): [StoredTargetType, string] {
  return target.type === 'user' ? ['user', target.key] : ['department', target.name];
}

function targetView(target: ResolvedTarget): { targetType: TargetType; targetIdentifier: string } {
  return target.type === 'user'
    ? { targetType: TargetType.USER, targetIdentifier: target.key }
    : { targetType: TargetType.DEPARTMENT, targetIdentifier: target.name };
}

function departmentNotFound(name: string): DomainError {
  return new DomainError(ErrorCode.DEPARTMENT_NOT_FOUND, `Department ${JSON.stringify(name)} is not known.`);
}

function parseDetails(details: string | null): Record<string, unknown> | null {
  if (details === null || details === '') return null;
  try {
    const parsed: unknown = JSON.parse(details);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      return parsed as Record<string, unknown>;
    return { value: parsed };
  } catch {
    // Rows copied from the old system may hold plain text.
    return { text: details };
  }
}
