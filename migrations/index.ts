import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261123000000_platform } from './Migration20261123000000_platform.js';
import { Migration20261123100000_ledger } from './Migration20261123100000_ledger.js';
import { Migration20261123110000_employees } from './Migration20261123110000_employees.js';
import { Migration20261123120000_permissions } from './Migration20261123120000_permissions.js';
import { Migration20261123130000_jobs } from './Migration20261123130000_jobs.js';
import { Migration20261123140000_strategies } from './Migration20261123140000_strategies.js';
import { Migration20261123150000_idempotency } from './Migration20261123150000_idempotency.js';
import { Migration20261123160000_permission_removal_push } from './Migration20261123160000_permission_removal_push.js';
import { Migration20261124000000_permission_push_uncertainty } from './Migration20261124000000_permission_push_uncertainty.js';

/**
 * Every migration, in order. Static imports make discovery behave the same under tsc output, tsx
 * and vitest. `npm run migration:create` appends here.
 */
export const migrationsList: MigrationObject[] = [
  { name: 'Migration20261123000000_platform', class: Migration20261123000000_platform },
  { name: 'Migration20261123100000_ledger', class: Migration20261123100000_ledger },
  { name: 'Migration20261123110000_employees', class: Migration20261123110000_employees },
  { name: 'Migration20261123120000_permissions', class: Migration20261123120000_permissions },
  { name: 'Migration20261123130000_jobs', class: Migration20261123130000_jobs },
  { name: 'Migration20261123140000_strategies', class: Migration20261123140000_strategies },
  { name: 'Migration20261123150000_idempotency', class: Migration20261123150000_idempotency },
  { name: 'Migration20261123160000_permission_removal_push', class: Migration20261123160000_permission_removal_push },
  {
    name: 'Migration20261124000000_permission_push_uncertainty',
    class: Migration20261124000000_permission_push_uncertainty,
  },
];
