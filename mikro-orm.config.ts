import 'reflect-metadata';
import { defineConfig } from '@mikro-orm/postgresql';
import { mainOrmOptions } from './src/db/orm.js';

/**
 * For the MikroORM CLI only (`npm run mikro-orm -- migration:list`); the server builds its own
 * options in src/db/orm.ts. Needs DATABASE_URL.
 */
const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL is required for the MikroORM CLI');

export default defineConfig(mainOrmOptions(url));
