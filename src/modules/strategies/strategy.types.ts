import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { connectionTypes } from '../../graphql/pagination.js';
import { DateTimeScalar } from '../../graphql/scalars.js';

/** GraphQL shapes of strategies (the contract's names); the resolver maps entities onto them. */

export enum StrategyType {
  SINGLE = 'SINGLE',
  PERIODIC = 'PERIODIC',
}
registerEnumType(StrategyType, { name: 'StrategyType' });

export enum ExecutionStatus {
  PROCESSING = 'PROCESSING',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
}
registerEnumType(ExecutionStatus, { name: 'ExecutionStatus' });

@ObjectType('Strategy')
export class StrategyObject {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String)
  title!: string;

  @Field(() => StrategyType)
  type!: StrategyType;

  @Field(() => Float)
  amount!: number;

  @Field(() => String, { nullable: true })
  model!: string | null;

  @Field(() => String, { nullable: true, description: '6-field cron, seconds first; set for PERIODIC only' })
  periodicExpr!: string | null;

  @Field(() => String)
  condition!: string;

  @Field(() => Int, { description: 'PERIODIC only; 0 = unlimited' })
  maxExecPerUser!: number;

  @Field(() => Int, { nullable: true, description: 'null = the default expiry rule' })
  validityDays!: number | null;

  @Field(() => Boolean)
  enabled!: boolean;

  @Field(() => DateTimeScalar)
  createdAt!: Date;

  @Field(() => DateTimeScalar)
  updatedAt!: Date;

  // nextRunAt and executions are field resolvers (strategy.resolver.ts).
}

@ObjectType('StrategyExecution')
export class StrategyExecutionObject {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  strategyId!: string;

  @Field(() => String)
  userId!: string;

  @Field(() => String, { description: 'YYYYMMDDHHMMSS of the run start, configured time zone' })
  batchNumber!: string;

  @Field(() => ExecutionStatus)
  status!: ExecutionStatus;

  @Field(() => Float)
  amount!: number;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;

  @Field(() => String, { nullable: true, description: 'why a FAILED execution failed' })
  error!: string | null;

  @Field(() => DateTimeScalar)
  createdAt!: Date;

  @Field(() => DateTimeScalar)
  updatedAt!: Date;
}

export const StrategyPage = connectionTypes(StrategyObject, 'Strategy');
export const StrategyExecutionPage = connectionTypes(StrategyExecutionObject, 'StrategyExecution');

@InputType('StrategyFilter')
export class StrategyFilterInput {
  @Field(() => Boolean, { nullable: true })
  enabled?: boolean | null;

  @Field(() => StrategyType, { nullable: true })
  type?: StrategyType | null;

  @Field(() => String, { nullable: true })
  nameContains?: string | null;
}

@InputType('CreateStrategyInput')
export class CreateStrategyInput {
  @Field(() => String, { description: '1-100 characters, unique' })
  name!: string;

  @Field(() => String, { description: '1-200 characters' })
  title!: string;

  @Field(() => StrategyType)
  type!: StrategyType;

  @Field(() => Float)
  amount!: number;

  @Field(() => String, { nullable: true })
  model?: string | null;

  @Field(() => String, { nullable: true, description: 'required for PERIODIC' })
  periodicExpr?: string | null;

  @Field(() => String, { description: 'condition expression; must parse' })
  condition!: string;

  @Field(() => Int, { nullable: true, defaultValue: 0 })
  maxExecPerUser?: number | null;

  @Field(() => Int, { nullable: true, description: '>= 1 when given' })
  validityDays?: number | null;

  @Field(() => Boolean, { nullable: true, defaultValue: true })
  enabled?: boolean | null;
}

/**
 * A partial update: a field left out keeps its value. `model`, `periodicExpr` and `validityDays`
 * may be set to null (cleared); null for any other field is refused (BAD_USER_INPUT).
 */
@InputType('UpdateStrategyInput')
export class UpdateStrategyInput {
  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => String, { nullable: true })
  title?: string | null;

  @Field(() => StrategyType, { nullable: true })
  type?: StrategyType | null;

  @Field(() => Float, { nullable: true })
  amount?: number | null;

  @Field(() => String, { nullable: true })
  model?: string | null;

  @Field(() => String, { nullable: true })
  periodicExpr?: string | null;

  @Field(() => String, { nullable: true })
  condition?: string | null;

  @Field(() => Int, { nullable: true })
  maxExecPerUser?: number | null;

  @Field(() => Int, { nullable: true })
  validityDays?: number | null;

  @Field(() => Boolean, { nullable: true })
  enabled?: boolean | null;
}

@ObjectType('ConditionError')
export class ConditionErrorObject {
  @Field(() => String)
  message!: string;

  @Field(() => Int, { description: '0-based character offset in the expression' })
  position!: number;
}

@ObjectType('ConditionValidation')
export class ConditionValidationObject {
  @Field(() => Boolean)
  valid!: boolean;

  @Field(() => ConditionErrorObject, { nullable: true })
  error!: ConditionErrorObject | null;

  @Field(() => String, { nullable: true, description: 'canonical rendering of a valid expression' })
  normalized!: string | null;
}

@ObjectType('StrategyPreview')
export class StrategyPreviewObject {
  @Field(() => Int, { description: 'users for whom the condition holds now' })
  matchedUsers!: number;

  @Field(() => Int)
  totalUsers!: number;

  @Field(() => [String], { description: 'up to `sample` of them' })
  sampleUserIds!: string[];

  @Field(() => Int, {
    description: 'users that could not be decided (the gateway failed for quota-le); not counted as matched',
  })
  undecidedUsers!: number;
}
