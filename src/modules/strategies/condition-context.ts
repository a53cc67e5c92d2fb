import type { MikroORM } from '@mikro-orm/postgresql';
import type { Cents } from '../../money.js';
import type { EmployeeDirectory } from '../employees/employee-directory.js';
import type { GatewayClient } from '../gateway/gateway.client.js';
import type { ConditionContext } from './condition/index.js';
import type { CandidateUser } from './strategy-candidates.js';

/**
 * What the evaluator asks about a user that SQL left undecided: the department path (from the HR
 * mirror, when sync is on; already known when the candidate query joined it) and the remaining quota
 * (gateway total − used, the only reason a condition needs the gateway).
 */
export function conditionContext(
  orm: MikroORM,
  employees: EmployeeDirectory,
  gateway: GatewayClient,
): ConditionContext {
  const em = orm.em.fork();
  return {
    departmentPathOf: async (user: CandidateUser) => {
      if (!employees.syncEnabled) return null;
      if (user.departmentPath !== undefined) return user.departmentPath;
      if (!user.employeeNumber) return null;
      return (await employees.find(em, user.employeeNumber))?.departmentPath ?? null;
    },
    remainingQuota: async (userId: string): Promise<Cents> => {
      const [total, used] = await Promise.all([gateway.getTotal(userId), gateway.getUsed(userId)]);
      return total - used;
    },
  };
}
