import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261123000000_platform } from './Migration20261123000000_platform.js';

/**
 * Every migration, in order. Static imports make discovery behave the same under tsc output, tsx
 * and vitest. `npm run migration:create` appends here.
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261123000000_platform', class: Migration20261123000000_platform },
];
