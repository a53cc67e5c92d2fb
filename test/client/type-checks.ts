import type {
  EffectivePermissionQuery,
  EffectivePermissionQueryVariables,
  TransferOutMutation,
  TransferOutMutationVariables,
} from './generated/graphql.js';
import type { TypedRequest } from './typed-request.js';

/** Never called: `npm run typecheck` proves the generated types reject wrong variables. */
export function wrongVariablesDoNotCompile(request: TypedRequest): void {
  void request<EffectivePermissionQuery, EffectivePermissionQueryVariables>('', {
    // @ts-expect-error kind must be a PermissionKind
    kind: 'SUPERPOWER',
    targetType: 'USER',
    targetIdentifier: 'x',
  });
  // @ts-expect-error receiverId is required
  void request<TransferOutMutation, TransferOutMutationVariables>('', { input: { items: [] } });
}
