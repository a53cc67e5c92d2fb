import { Args, Authorized, Ctx, Query, Resolver } from 'type-graphql';
import { Role } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import type { Connection } from '../../graphql/pagination.js';
import type { EmployeeRecord } from './employee-directory.js';
import { EmployeePage, EmployeesArgs } from './employees.types.js';

/** The HR mirror, read-only, for administrators (SPEC §6 `employees`, `departments`). */
@Resolver()
export class EmployeesResolver {
  @Authorized(Role.ADMIN)
  @Query(() => EmployeePage.Connection)
  async employees(
    @Args(() => EmployeesArgs) args: EmployeesArgs,
    @Ctx() context: RequestContext,
  ): Promise<Connection<EmployeeRecord>> {
    const { departmentName, search, first, after, offset } = args;
    return context.services.employees.list(context.em, { departmentName, search }, { first, after, offset });
  }

  @Authorized(Role.ADMIN)
  @Query(() => [String], { description: 'every department path element known' })
  async departments(@Ctx() context: RequestContext): Promise<string[]> {
    return context.services.employees.departments(context.em);
  }
}
