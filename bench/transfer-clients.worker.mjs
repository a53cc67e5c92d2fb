// Worker entry of bench/transfer-clients.ts: worker threads do not inherit tsx's loader hooks on
// Node 20, so the TypeScript module is loaded through tsx's API.
import { tsImport } from 'tsx/esm/api';

await tsImport('./transfer-clients.ts', import.meta.url);
