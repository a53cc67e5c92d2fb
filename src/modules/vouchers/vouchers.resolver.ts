import { Arg, Authorized, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import { viewerOf } from '../../graphql/auth-checker.js';
import type { RequestContext } from '../../graphql/context.js';
import { centsToAmount } from '../../money.js';
import { IDEMPOTENCY_KEY_DESCRIPTION } from '../idempotency/idempotency.graphql.js';
import { readIdempotencyKey } from '../idempotency/idempotency-keys.js';
import type { VoucherItem } from './voucher-codec.js';
import {
  TransferInResultObject,
  TransferInStatus,
  TransferOutInput,
  TransferOutResultObject,
  VoucherInfoObject,
} from './vouchers.types.js';

const toAvailability = (item: VoucherItem) => ({ amount: centsToAmount(item.amount), expiryDate: item.expiryDate });

/** transferOut / transferIn / voucher (SPEC §5): the token's user is the giver or the receiver. */
@Resolver()
export class VouchersResolver {
  @Authorized()
  @Mutation(() => TransferOutResultObject, { description: 'send quota from your batches; returns the voucher' })
  async transferOut(
    @Arg('input', () => TransferOutInput) input: TransferOutInput,
    @Arg('idempotencyKey', () => String, { nullable: true, description: IDEMPOTENCY_KEY_DESCRIPTION })
    idempotencyKey: string | null,
    @Ctx() context: RequestContext,
  ): Promise<TransferOutResultObject> {
    const viewer = viewerOf(context);
    const key = readIdempotencyKey(idempotencyKey);
    const request = {
      receiverId: input.receiverId,
      items: input.items.map((item) => ({ amount: item.amount, expiryDate: item.expiryDate })),
    };
    const result = await context.services.vouchers.transferOut(context.em, viewer, request, key);
    return {
      voucherCode: result.voucherCode,
      receiverId: result.receiverId,
      totalAmount: centsToAmount(result.totalAmount),
      items: result.items.map(toAvailability),
    };
  }

  @Authorized()
  @Mutation(() => TransferInResultObject, { description: 'redeem a voucher issued to you' })
  async transferIn(
    @Arg('voucherCode', () => String) voucherCode: string,
    @Ctx() context: RequestContext,
  ): Promise<TransferInResultObject> {
    const viewer = viewerOf(context);
    const result = await context.services.vouchers.transferIn(context.em, viewer.userId, voucherCode);
    return {
      ...result,
      status: result.status as TransferInStatus,
      amount: centsToAmount(result.amount),
      items: result.items.map((item) => ({ ...item, amount: centsToAmount(item.amount) })),
    };
  }

  @Authorized()
  @Query(() => VoucherInfoObject, { description: 'what a voucher holds: for its giver, its receiver or an admin' })
  async voucher(@Arg('code', () => String) code: string, @Ctx() context: RequestContext): Promise<VoucherInfoObject> {
    const info = await context.services.vouchers.voucherInfo(context.em, viewerOf(context), code);
    return { ...info, items: info.items.map(toAvailability) };
  }
}
