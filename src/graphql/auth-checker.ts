import type { AuthChecker } from 'type-graphql';
import { DomainError, ErrorCode } from '../errors.js';
import { unauthenticated, type Viewer } from '../modules/auth/token-verifier.js';
import type { RequestContext } from './context.js';

/** Roles for `@Authorized(...)`: `@Authorized()` = any valid token, `@Authorized(Role.ADMIN)` = admins. */
export enum Role {
  ADMIN = 'ADMIN',
}

/**
 * type-graphql's guard. It throws our own errors, so the codes are the contract's: no or a bad
 * token → UNAUTHENTICATED (with the reason), a user on an admin operation → FORBIDDEN.
 */
export const authChecker: AuthChecker<RequestContext> = ({ context }, roles) => {
  const viewer = context.viewer;
  if (!viewer) throw unauthenticated(context.authentication);
  if (roles.includes(Role.ADMIN) && !viewer.isAdmin) {
    throw new DomainError(ErrorCode.FORBIDDEN, 'This operation is for administrators only.');
  }
  return true;
};

/** For resolvers that allow "the user themself or an admin". */
export function requireSelfOrAdmin(viewer: Viewer, userId: string): void {
  if (viewer.userId !== userId && !viewer.isAdmin) {
    throw new DomainError(
      ErrorCode.FORBIDDEN,
      "You may only read your own data; reading another user's needs an administrator.",
    );
  }
}

/** The viewer of a guarded resolver (the guard has already run). */
export function viewerOf(context: RequestContext): Viewer {
  if (!context.viewer) throw unauthenticated(context.authentication);
  return context.viewer;
}
