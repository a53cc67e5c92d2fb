import type { MikroORM } from '@mikro-orm/postgresql';
import type { AppConfig } from '../../config.js';
import { isDomainError } from '../../errors.js';
import { EmployeeDirectory } from '../employees/employee-directory.js';
import { UserDirectory } from '../users/user-directory.js';
import type { StoredTargetType } from './permission.enums.js';
import { patchAuditDetails } from './permission-audit.store.js';
import { type KindSpec, MODEL_SPEC, QUOTA_CHECK_SPEC, STAR_CHECK_SPEC } from './permission-kinds.js';
import { lockPermissions } from './permission-store.js';
import { PermissionSubjects } from './permission-subjects.js';
import { applySettingChange } from './setting-change.js';

/**
 * `npm run seed`: whitelists and switches for the demo organisation (demo-organisation.ts), so
 * effectivePermission has something to show at every level. Runs after the organisation step.
 * Idempotent: a setting that already has its demo value is left alone (no audit, no recompute); each
 * change goes through applySettingChange, the same path as the API's.
 * The seed does not push: effective records are written but the gateway is not told, which the push
 * rules treat as "owed" — the next employee sync's backstop (or a recompute) pushes them.
 */

type DemoTarget = { department: string } | { employeeNumber: string };

interface DemoSetting<V> {
  spec: KindSpec<V>;
  target: DemoTarget;
  value: V;
}

const DEMO_SETTINGS: (DemoSetting<string[]> | DemoSetting<boolean>)[] = [
  { spec: MODEL_SPEC, target: { department: 'Acme Group' }, value: ['gpt-4o-mini', 'deepseek-chat'] },
  { spec: MODEL_SPEC, target: { department: 'Research' }, value: ['gpt-4o', 'claude-sonnet-4', 'deepseek-chat'] },
  { spec: MODEL_SPEC, target: { department: 'AI Lab' }, value: ['gpt-4o', 'claude-opus-4', 'deepseek-r1'] },
  // The demo user (employee 000001) has a personal whitelist that beats their departments'.
  { spec: MODEL_SPEC, target: { employeeNumber: '000001' }, value: ['gpt-4o', 'claude-opus-4', 'qwen-max'] },
  { spec: STAR_CHECK_SPEC, target: { department: 'Engineering' }, value: true },
  { spec: STAR_CHECK_SPEC, target: { employeeNumber: '000002' }, value: false },
  { spec: QUOTA_CHECK_SPEC, target: { department: 'Acme Group' }, value: true },
  { spec: QUOTA_CHECK_SPEC, target: { department: 'Sales' }, value: false },
];

const SEED_ACTOR = 'seed';

/** Returns how many demo settings were written (0 on a re-run). */
export async function seedDemoPermissions(orm: MikroORM, config: AppConfig): Promise<number> {
  const users = new UserDirectory(orm, !config.authDatabaseUrl);
  const employees = new EmployeeDirectory(config, users);
  const subjects = new PermissionSubjects(employees, users);
  return orm.em.fork().transactional(async (em) => {
    await lockPermissions(em);
    let written = 0;
    for (const item of DEMO_SETTINGS) {
      const spec = item.spec as KindSpec<unknown>;
      let targetType: StoredTargetType;
      let identifier: string;
      if ('department' in item.target) {
        if (!(await employees.departmentExists(em, item.target.department))) continue;
        targetType = 'department';
        identifier = item.target.department;
      } else {
        try {
          identifier = await employees.resolveEmployeeKey(em, { employeeNumber: item.target.employeeNumber });
        } catch (error) {
          // Without the demo directory (AUTH_DATABASE_URL) the demo users are not there: skip theirs.
          if (isDomainError(error)) continue;
          throw error;
        }
        targetType = 'user';
      }
      const applied = await applySettingChange(em, subjects, {
        spec,
        targetType,
        targetIdentifier: identifier,
        nextValue: () => item.value,
        actor: SEED_ACTOR,
        now: new Date(),
      });
      if (applied.auditId === null) continue;
      for (const owed of applied.tasks) {
        await patchAuditDetails(em, owed.auditId, {
          gatewayNotified: false,
          skipped: 'seeded without a push; the next employee sync or recompute pushes it',
        });
      }
      written += 1;
    }
    return written;
  });
}
