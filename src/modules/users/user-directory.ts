import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { DomainError, ErrorCode } from '../../errors.js';
import { AuthUser } from './auth-user.entity.js';

/** The textual form PostgreSQL accepts for a uuid (hyphens where it prints them). */
const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads the user directory (`auth_users`, SPEC §2), which may live in the main database or in its
 * own (AUTH_DATABASE_URL). Never writes it. Other modules ask here instead of touching AuthUser.
 */
export class UserDirectory {
  /** Whether `auth_users.id` is a uuid column (SPEC §2: text or uuid), read once. */
  private idIsUuid: Promise<boolean> | undefined;

  constructor(
    private readonly orm: MikroORM,
    /** true when the directory shares the main database, so SQL may join it with our tables. */
    readonly sharesMainDatabase: boolean,
  ) {}

  /**
   * The ids among `userIds` the directory's id column can hold. A uuid column refuses any other text
   * with an error (22P02) rather than finding nothing, and such an id is simply not in the directory.
   */
  private async storableIds(userIds: readonly string[]): Promise<string[]> {
    this.idIsUuid ??= this.readIdIsUuid().catch((error) => {
      this.idIsUuid = undefined; // not remembered: the next lookup asks again
      throw error;
    });
    return (await this.idIsUuid) ? userIds.filter((id) => UUID_TEXT.test(id)) : [...userIds];
  }

  private async readIdIsUuid(): Promise<boolean> {
    const rows = await this.em().execute<{ data_type: string }[]>(
      `select data_type from information_schema.columns
       where table_schema = current_schema() and table_name = 'auth_users' and column_name = 'id'`,
    );
    return rows[0]?.data_type === 'uuid';
  }

  /**
   * Checked at start: the table and every column we read (the entity's) are there. A directory database
   * without them (a wrong AUTH_DATABASE_URL) would otherwise start, answer /ready, and fail every
   * request that looks a user up with INTERNAL_SERVER_ERROR.
   */
  async assertReadable(): Promise<void> {
    const columns = this.orm
      .getMetadata()
      .get(AuthUser)
      .props.flatMap((property) => property.fieldNames);
    try {
      await this.em().execute(`select ${columns.map((column) => `"${column}"`).join(', ')} from auth_users limit 0`);
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n').at(-1)?.trim() : String(error);
      throw new Error(`the user directory (auth_users, SPEC §2) cannot be read: ${reason}`, { cause: error });
    }
  }

  /** A fresh EntityManager on the directory's database. */
  em(): EntityManager {
    return this.orm.em.fork({ clear: true });
  }

  async findById(userId: string): Promise<AuthUser | null> {
    if ((await this.storableIds([userId])).length === 0) return null;
    return this.em().findOne(AuthUser, { id: userId });
  }

  /**
   * The starred projects (`github_star`) of several users in one query, by id; ids not in the
   * directory are missing from the map. A transfer reads its giver and receiver here on every call, so
   * it reads two columns as plain rows: mapping them to entities cost more than the query.
   */
  async findGithubStars(userIds: readonly string[]): Promise<Map<string, string | null>> {
    const ids = await this.storableIds([...new Set(userIds)]);
    if (ids.length === 0) return new Map();
    const rows = await this.em().execute<{ id: string; github_star: string | null }[]>(
      `select id, github_star from auth_users where id in (${ids.map(() => '?').join(', ')})`,
      ids,
    );
    return new Map(rows.map((row) => [row.id, row.github_star]));
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

  /** The ids of the users carrying each of these employee numbers (numbers nobody carries are missing). */
  async userIdsByEmployeeNumber(employeeNumbers: readonly string[]): Promise<Map<string, string[]>> {
    const byNumber = new Map<string, string[]>();
    const numbers = [...new Set(employeeNumbers)];
    if (numbers.length === 0) return byNumber;
    const users = await this.em().find(
      AuthUser,
      { employeeNumber: { $in: numbers } },
      { fields: ['id', 'employeeNumber'], orderBy: { id: 'asc' } },
    );
    for (const user of users) {
      const number = user.employeeNumber as string;
      byNumber.set(number, [...(byNumber.get(number) ?? []), user.id]);
    }
    return byNumber;
  }

  async exists(userId: string): Promise<boolean> {
    if ((await this.storableIds([userId])).length === 0) return false;
    return (await this.em().count(AuthUser, { id: userId })) > 0;
  }

  async ping(): Promise<void> {
    await this.em().execute('select 1');
  }
}
