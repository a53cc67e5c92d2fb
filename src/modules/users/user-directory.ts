import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { DomainError, ErrorCode } from '../../errors.js';
import { AuthUser } from './auth-user.entity.js';

/**
 * Reads the user directory (`auth_users`, SPEC §2), which may live in the main database or in its
 * own (AUTH_DATABASE_URL). Never writes it. Other modules ask here instead of touching AuthUser.
 */
export class UserDirectory {
  constructor(
    private readonly orm: MikroORM,
    /** true when the directory shares the main database, so SQL may join it with our tables. */
    readonly sharesMainDatabase: boolean,
  ) {}

  /** A fresh EntityManager on the directory's database. */
  em(): EntityManager {
    return this.orm.em.fork({ clear: true });
  }

  async findById(userId: string): Promise<AuthUser | null> {
    return this.em().findOne(AuthUser, { id: userId });
  }

  /** Several users in one query (a transfer reads giver and receiver), by id; absent ids are missing. */
  async findByIds(userIds: readonly string[]): Promise<Map<string, AuthUser>> {
    const users = await this.em().find(AuthUser, { id: { $in: [...new Set(userIds)] } });
    return new Map(users.map((user) => [user.id, user]));
  }

  async requireById(userId: string): Promise<AuthUser> {
    const user = await this.findById(userId);
    if (!user)
      throw new DomainError(ErrorCode.USER_NOT_FOUND, `User ${JSON.stringify(userId)} is not in the user directory.`);
    return user;
  }

  async findByEmployeeNumber(employeeNumber: string): Promise<AuthUser | null> {
    return this.em().findOne(AuthUser, { employeeNumber }, { orderBy: { id: 'asc' } });
  }

  async exists(userId: string): Promise<boolean> {
    return (await this.em().count(AuthUser, { id: userId })) > 0;
  }

  async ping(): Promise<void> {
    await this.em().execute('select 1');
  }
}
