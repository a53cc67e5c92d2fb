import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { connectionTypes } from '../../graphql/pagination.js';
import { DateTimeScalar } from '../../graphql/scalars.js';

/** The contract's ledger types (SPEC §5). Amounts are Float at the API and cents inside. */

export enum QuotaStatus {
  VALID = 'VALID',
  EXPIRED = 'EXPIRED',
}
registerEnumType(QuotaStatus, { name: 'QuotaStatus' });

export enum AuditOperation {
  RECHARGE = 'RECHARGE',
  TRANSFER_IN = 'TRANSFER_IN',
  TRANSFER_OUT = 'TRANSFER_OUT',
  EXPIRE = 'EXPIRE',
  DEDUCT = 'DEDUCT',
}
registerEnumType(AuditOperation, { name: 'AuditOperation' });

export enum AuditItemStatus {
  SUCCESS = 'SUCCESS',
  FAILED = 'FAILED',
  EXPIRED = 'EXPIRED',
}
registerEnumType(AuditItemStatus, { name: 'AuditItemStatus' });

@ObjectType('QuotaBatch')
export class QuotaBatchObject {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  userId!: string;

  @Field(() => Float, { description: 'what the ledger still holds in this batch' })
  amount!: number;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;

  @Field(() => QuotaStatus)
  status!: QuotaStatus;

  @Field(() => DateTimeScalar)
  createdAt!: Date;
}

@ObjectType('QuotaAvailability')
export class QuotaAvailabilityObject {
  @Field(() => Float, { description: "spendable after FIFO attribution of the gateway's used quota" })
  amount!: number;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;
}

/**
 * `batches` is not declared here: UserQuotaResolver serves it, so that only an admin or the user
 * themself can read it, whichever query the UserQuota came from. The resolver reads `batchList`.
 */
@ObjectType('UserQuota')
export class UserQuotaObject {
  @Field(() => String)
  userId!: string;

  @Field(() => Float, { description: "the gateway's total" })
  totalQuota!: number;

  @Field(() => Float, { description: "the gateway's used" })
  usedQuota!: number;

  @Field(() => Float, { description: 'totalQuota - usedQuota' })
  remainingQuota!: number;

  @Field(() => [QuotaAvailabilityObject], { description: 'batches with something left, earliest expiry first' })
  available!: QuotaAvailabilityObject[];

  @Field(() => Boolean, { nullable: true, description: 'null unless the GitHub star check is configured' })
  isStar!: boolean | null;

  batchList!: QuotaBatchObject[];
}

@ObjectType('AuditSummary')
export class AuditSummaryObject {
  @Field(() => Float)
  totalAmount!: number;

  @Field(() => Int)
  totalItems!: number;

  @Field(() => Int)
  successfulItems!: number;

  @Field(() => Int)
  failedItems!: number;

  @Field(() => Int)
  expiredItems!: number;

  @Field(() => DateTimeScalar, { nullable: true })
  earliestExpiryDate!: Date | null;
}

@ObjectType('AuditItem')
export class AuditItemObject {
  @Field(() => Float)
  amount!: number;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;

  @Field(() => AuditItemStatus)
  status!: AuditItemStatus;

  @Field(() => String, { nullable: true })
  failureReason!: string | null;

  @Field(() => Float, { nullable: true })
  originalQuota!: number | null;

  @Field(() => Float, { nullable: true })
  newQuota!: number | null;
}

@ObjectType('AuditDetails')
export class AuditDetailsObject {
  @Field(() => AuditOperation)
  operation!: AuditOperation;

  @Field(() => AuditSummaryObject)
  summary!: AuditSummaryObject;

  @Field(() => [AuditItemObject])
  items!: AuditItemObject[];
}

@ObjectType('QuotaAudit')
export class QuotaAuditObject {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  userId!: string;

  @Field(() => Float, { description: 'signed: + RECHARGE/TRANSFER_IN, - TRANSFER_OUT/EXPIRE/DEDUCT' })
  amount!: number;

  @Field(() => AuditOperation)
  operation!: AuditOperation;

  @Field(() => String, { nullable: true })
  voucherCode!: string | null;

  @Field(() => String, { nullable: true })
  relatedUser!: string | null;

  @Field(() => ID, { nullable: true })
  strategyId!: string | null;

  @Field(() => String, { nullable: true })
  strategyName!: string | null;

  @Field(() => String, { nullable: true, description: 'DEDUCT reason; EXPIRE: why' })
  reason!: string | null;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;

  @Field(() => AuditDetailsObject, { nullable: true })
  details!: AuditDetailsObject | null;

  @Field(() => DateTimeScalar)
  createdAt!: Date;
}

export const QuotaAuditPage = connectionTypes(QuotaAuditObject, 'QuotaAudit');

@InputType('QuotaAuditFilter')
export class QuotaAuditFilterInput {
  @Field(() => AuditOperation, { nullable: true })
  operation?: AuditOperation | null;

  @Field(() => DateTimeScalar, { nullable: true })
  from?: Date | null;

  @Field(() => DateTimeScalar, { nullable: true })
  to?: Date | null;
}

@ObjectType('MonthlyUsage')
export class MonthlyUsageObject {
  @Field(() => String)
  userId!: string;

  @Field(() => String, { description: 'YYYY-MM' })
  yearMonth!: string;

  @Field(() => Float)
  usedQuota!: number;

  @Field(() => DateTimeScalar)
  recordedAt!: Date;
}

@InputType('DeductQuotaInput')
export class DeductQuotaInput {
  @Field(() => String)
  userId!: string;

  @Field(() => Float, { description: '> 0' })
  amount!: number;

  @Field(() => String)
  reason!: string;

  @Field(() => String, {
    nullable: true,
    description: 'idempotency: a second deduction with the same reference is a no-op',
  })
  reference?: string | null;
}
