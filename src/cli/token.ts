import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { loadOrCreateSecrets } from '../embedded.js';
import { mintToken } from '../modules/auth/token-verifier.js';

/**
 * `npm run token -- --user ID [--admin] [--ttl 1h] [--name NAME]`: mints an HS256 token against the
 * configured AUTH_JWT_SECRET, or against the secret embedded mode keeps in DATA_DIR/secrets.json.
 */

const usage = 'usage: npm run token -- --user ID [--admin] [--ttl 1h] [--name NAME]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      user: { type: 'string' },
      admin: { type: 'boolean', default: false },
      ttl: { type: 'string', default: '1h' },
      name: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || !values.user) {
    process.stderr.write(`${usage}\n`);
    process.exit(values.help ? 0 : 2);
  }
  // The spellings jose's setExpirationTime accepts, with a unit and above zero: a bare "30" or
  // "0s" would otherwise fail inside jose (exit 1) or mint a token that is already expired.
  if (
    !/^[1-9]\d* ?(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?|y|yrs?|years?)$/i.test(values.ttl)
  ) {
    process.stderr.write(`--ttl must be a duration like 30m, 1h, 7d; got "${values.ttl}"\n`);
    process.exit(2);
  }

  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig(process.env);
  if (config.auth.jwksUrl) {
    process.stderr.write('AUTH_JWKS_URL is set: tokens come from your identity provider, not from this command.\n');
    process.exit(2);
  }
  let secret = config.auth.jwtSecret;
  if (!secret) {
    if (!config.embeddedDatabase) throw new ConfigError('AUTH_JWT_SECRET', 'is required to mint tokens');
    secret = (await loadOrCreateSecrets(path.resolve(config.dataDir))).secrets.jwtSecret;
  }
  const token = await mintToken(secret, {
    userId: values.user,
    admin: values.admin,
    ttl: values.ttl,
    name: values.name,
  });
  process.stdout.write(`${token}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`token: ${error instanceof Error ? error.message : String(error)}\n`);
  // An unknown option or a missing value is a usage error, like a bad --ttl.
  const usageError = String((error as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS');
  if (usageError) process.stderr.write(`${usage}\n`);
  process.exit(usageError ? 2 : 1);
});
