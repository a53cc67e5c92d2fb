import { Field, Float, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { DateTimeScalar } from '../../graphql/scalars.js';
import { QuotaAvailabilityObject } from '../quota/quota.types.js';

/** The contract's transfer and voucher types (SPEC §5). Amounts are Float at the API, cents inside. */

@InputType('TransferItemInput')
export class TransferItemInput {
  @Field(() => Float, { description: '> 0, at most 2 decimals' })
  amount!: number;

  @Field(() => DateTimeScalar, { description: 'the batch to take it from' })
  expiryDate!: Date;
}

@InputType('TransferOutInput')
export class TransferOutInput {
  @Field(() => String)
  receiverId!: string;

  @Field(() => [TransferItemInput], { description: '1-20 items' })
  items!: TransferItemInput[];
}

@ObjectType('TransferOutResult')
export class TransferOutResultObject {
  @Field(() => String)
  voucherCode!: string;

  @Field(() => String)
  receiverId!: string;

  @Field(() => Float)
  totalAmount!: number;

  @Field(() => [QuotaAvailabilityObject])
  items!: QuotaAvailabilityObject[];
}

export enum TransferInStatus {
  SUCCESS = 'SUCCESS',
  PARTIAL_SUCCESS = 'PARTIAL_SUCCESS',
  FAILED = 'FAILED',
  ALREADY_REDEEMED = 'ALREADY_REDEEMED',
}
registerEnumType(TransferInStatus, { name: 'TransferInStatus' });

@ObjectType('TransferInItem')
export class TransferInItemObject {
  @Field(() => Float)
  amount!: number;

  @Field(() => DateTimeScalar)
  expiryDate!: Date;

  @Field(() => Boolean)
  success!: boolean;

  @Field(() => Boolean)
  isExpired!: boolean;

  @Field(() => String, { nullable: true, description: 'EXPIRED, ...' })
  failureReason!: string | null;
}

@ObjectType('TransferInResult')
export class TransferInResultObject {
  @Field(() => TransferInStatus)
  status!: TransferInStatus;

  @Field(() => String)
  message!: string;

  @Field(() => String)
  voucherCode!: string;

  @Field(() => String)
  giverId!: string;

  @Field(() => String, { nullable: true })
  giverName!: string | null;

  @Field(() => String, { nullable: true })
  giverPhone!: string | null;

  @Field(() => String, { nullable: true })
  giverGithub!: string | null;

  @Field(() => String)
  receiverId!: string;

  @Field(() => Float, { description: 'what was credited' })
  amount!: number;

  @Field(() => [TransferInItemObject])
  items!: TransferInItemObject[];
}

@ObjectType('VoucherInfo')
export class VoucherInfoObject {
  @Field(() => Boolean)
  valid!: boolean;

  @Field(() => String, { nullable: true })
  giverId!: string | null;

  @Field(() => String, { nullable: true })
  receiverId!: string | null;

  @Field(() => [QuotaAvailabilityObject])
  items!: QuotaAvailabilityObject[];

  @Field(() => DateTimeScalar, { nullable: true })
  issuedAt!: Date | null;

  @Field(() => Boolean)
  redeemed!: boolean;

  @Field(() => DateTimeScalar, { nullable: true })
  redeemedAt!: Date | null;
}
