import { ArgsType, Field, ObjectType } from 'type-graphql';
import { ConnectionArgs, connectionTypes } from '../../graphql/pagination.js';
import { DateTimeScalar } from '../../graphql/scalars.js';
import type { EmployeeRecord } from './employee-directory.js';

/** One employee of the HR mirror (contract type `Employee`); resolvers return EmployeeRecord objects as they are. */
@ObjectType('Employee')
export class EmployeeObject implements EmployeeRecord {
  @Field(() => String)
  employeeNumber!: string;

  @Field(() => String)
  username!: string;

  @Field(() => [String], { description: 'root first, own department last' })
  departmentPath!: string[];

  @Field(() => DateTimeScalar)
  updatedAt!: Date;
}

export const EmployeePage = connectionTypes(EmployeeObject, 'Employee');

@ArgsType()
export class EmployeesArgs extends ConnectionArgs {
  @Field(() => String, { nullable: true })
  departmentName?: string | null;

  @Field(() => String, { nullable: true })
  search?: string | null;
}
