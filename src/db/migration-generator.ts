import { TSMigrationGenerator } from '@mikro-orm/migrations';

/**
 * The migration generator of `npm run migration:create` (and the MikroORM CLI): it writes only the
 * statements of the ORM's diff that ADD to the schema, and holds every other one back as a comment.
 *
 * Why: the ORM diffs the entities against the database, and our migrations build things no entity
 * describes — CHECK constraints on status columns, partial and expression unique indexes (one VALID
 * batch per expiry, one active exclusive job run, one redemption per voucher), tables without an
 * entity (idempotency_key, permission_removal_push). So every diff also proposes dropping them, and
 * a generated migration applied unread would remove the constraints that make exactly-once the
 * database's job. Additive statements (a new table, column, index or constraint) are what a new
 * entity or field needs; anything that drops, retypes or renames is for a person to write on purpose.
 */

type Diff = { up: string[]; down: string[] };

const ADDITIVE = [
  /^create table /i,
  /^create (unique )?index /i,
  /^alter table "[^"]+" add column /i,
  /^alter table "[^"]+" add constraint /i,
  /^comment on /i,
];
/** Clauses that make a statement more than an addition, wherever they appear outside quotes. */
const NOT_ONLY_ADDING = /\b(drop|rename|alter column|truncate)\b/i;

/** Whether a statement of the ORM's diff only adds to the schema. */
export function isAdditive(statement: string): boolean {
  const sql = statement.trim();
  // Names ("drop_time") and literals ('rename') are not clauses.
  const clauses = sql.replace(/'[^']*'/g, "''").replace(/"[^"]*"/g, '""');
  return ADDITIVE.some((pattern) => pattern.test(sql)) && !NOT_ONLY_ADDING.test(clauses);
}

/** The diff split into what is written and what is held back (blank grouping lines dropped). */
export function splitDiff(diff: Diff): { written: string[]; held: string[] } {
  const statements = diff.up.filter((statement) => statement.trim() !== '');
  return {
    written: statements.filter((statement) => isAdditive(statement)),
    held: statements.filter((statement) => !isAdditive(statement)),
  };
}

export class ReviewedMigrationGenerator extends TSMigrationGenerator {
  /** Writes no file when the diff adds nothing (the CLI then reports what was held back). */
  override async generate(diff: Diff, path?: string, name?: string): Promise<[string, string]> {
    if (splitDiff(diff).written.length === 0) return ['', ''];
    return super.generate(diff, path, name);
  }

  override generateMigrationFile(className: string, diff: Diff): string {
    const { written, held } = splitDiff(diff);
    let code = `import { Migration } from '@mikro-orm/migrations';\n\n`;
    code += `/** TODO: what this migration is for, and why (see the other migrations). */\n`;
    code += `export class ${className} extends Migration {\n`;
    code += `  override async up(): Promise<void> {\n`;
    for (const statement of written) code += this.createStatement(statement, 4);
    if (held.length > 0) {
      code += `\n    // Held back by src/db/migration-generator.ts: the ORM's diff also proposes these, mostly to\n`;
      code += `    // remove what the migrations built and no entity describes. Keep only what this change needs.\n`;
      for (const statement of held) code += commented(statement);
    }
    code += `  }\n\n`;
    code += `  override async down(): Promise<void> {\n`;
    if (held.length === 0) {
      for (const statement of diff.down.filter((sql) => sql.trim() !== '')) code += this.createStatement(statement, 4);
    } else {
      code += `    // TODO: undo up(). The ORM's down statements undo the held-back ones too, so they are not copied.\n`;
    }
    code += `  }\n}\n`;
    return code;
  }
}

function commented(statement: string): string {
  return `${statement
    .split('\n')
    .map((line) => `    // ${line}`)
    .join('\n')}\n`;
}
