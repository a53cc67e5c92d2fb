import { Entity, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * The user directory (SPEC §2), written by the login system and only read here. Column names are
 * the login system's; `readonly` makes MikroORM refuse to flush changes to it.
 */
@Entity({ tableName: 'auth_users', readonly: true })
export class AuthUser {
  @PrimaryKey({ type: 'text' })
  id!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'created_at', nullable: true })
  createdAt?: Date | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'updated_at', nullable: true })
  updatedAt?: Date | null;

  @Property({ type: 'datetime', columnType: 'timestamptz', fieldName: 'access_time', nullable: true })
  accessTime?: Date | null;

  @Property({ type: 'text', nullable: true })
  name?: string | null;

  @Property({ type: 'text', fieldName: 'github_id', nullable: true })
  githubId?: string | null;

  @Property({ type: 'text', fieldName: 'github_name', nullable: true })
  githubName?: string | null;

  @Property({ type: 'integer', default: 0 })
  vip: number = 0;

  @Property({ type: 'text', nullable: true })
  phone?: string | null;

  @Property({ type: 'text', nullable: true })
  email?: string | null;

  @Property({ type: 'text', nullable: true })
  company?: string | null;

  @Property({ type: 'text', fieldName: 'employee_number', nullable: true })
  employeeNumber?: string | null;

  /** Comma-separated starred projects, e.g. `zgsm-ai.zgsm,openai.gpt-4`. */
  @Property({ type: 'text', fieldName: 'github_star', nullable: true })
  githubStar?: string | null;
}
