import { GatewaySimulator } from '../modules/gateway/simulator/gateway-simulator.js';

/**
 * `npm run gateway-sim`: the gateway simulator on its own, for manual runs and for tests that drive it
 * out of process (GatewaySimulatorControl). Reads the same AIGATEWAY_* names as the server so the two
 * agree on the admin header, key and path without extra settings.
 */

function readPort(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 8098;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`GATEWAY_SIM_PORT must be a port number (0-65535), got "${value}"`);
    process.exit(1);
  }
  return port;
}

function readAdminPath(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (!value.startsWith('/')) {
    console.error(`AIGATEWAY_ADMIN_PATH must start with "/", got "${value}"`);
    process.exit(1);
  }
  return value;
}

async function main(): Promise<void> {
  const env = process.env;
  const authValue = env.AIGATEWAY_AUTH_VALUE ?? '';
  const simulator = new GatewaySimulator({
    authHeader: env.AIGATEWAY_AUTH_HEADER?.trim() || undefined,
    authValue,
    adminPath: readAdminPath(env.AIGATEWAY_ADMIN_PATH),
  });
  const url = await simulator.start(readPort(env.GATEWAY_SIM_PORT), env.GATEWAY_SIM_HOST?.trim() || '127.0.0.1');
  console.log(`gateway simulator listening on ${url}`);
  if (authValue === '') console.log('AIGATEWAY_AUTH_VALUE is empty: calls without an admin key are accepted');

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping gateway simulator`);
    simulator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error('gateway simulator did not stop cleanly:', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error('gateway simulator failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
