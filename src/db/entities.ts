import { AuthUser } from '../modules/users/auth-user.entity.js';

/**
 * Every entity of the main database, as class references (no folder discovery: it behaves the
 * same under tsc output, tsx and vitest). Modules add theirs here.
 */
export const mainEntities = [AuthUser];

/** The entities of the user directory, when it lives in its own database (AUTH_DATABASE_URL). */
export const directoryEntities = [AuthUser];
