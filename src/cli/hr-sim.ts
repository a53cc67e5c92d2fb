import { generateHrKey, HrSimulator } from '../modules/employees/hr-simulator.js';

/**
 * `npm run hr-sim`: the HR simulator on its own (SPEC §7), serving the demo organisation. Reads the
 * server's HR_EMPLOYEES_KEY / HR_DEPARTMENTS_KEY so the two agree; generates and prints keys when they
 * are unset. HR_SIM_PORT (default 8097), HR_SIM_HOST (default 127.0.0.1), HR_SIM_XML=true to wrap
 * the payloads in XML.
 */

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

function readPort(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 8097;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    fail(`HR_SIM_PORT must be a port number (0-65535), got "${value}"`);
  return port;
}

function readKey(name: string, value: string | undefined): string {
  if (value === undefined || value.trim() === '') return generateHrKey();
  const bytes = Buffer.byteLength(value);
  if (![16, 24, 32].includes(bytes)) fail(`${name} must be 16, 24 or 32 bytes, got ${bytes}`);
  return value;
}

async function main(): Promise<void> {
  const env = process.env;
  const employeesKey = readKey('HR_EMPLOYEES_KEY', env.HR_EMPLOYEES_KEY);
  const departmentsKey = readKey('HR_DEPARTMENTS_KEY', env.HR_DEPARTMENTS_KEY);
  const xml = ['true', '1', 'yes', 'on'].includes((env.HR_SIM_XML ?? '').trim().toLowerCase());
  const simulator = new HrSimulator({ employeesKey, departmentsKey, xml });
  const url = await simulator.start(readPort(env.HR_SIM_PORT), env.HR_SIM_HOST?.trim() || '127.0.0.1');
  console.log(`HR simulator listening on ${url}${xml ? ' (XML-wrapped payloads)' : ''}`);
  console.log('Point the server at it with:');
  console.log('  HR_SYNC_ENABLED=true');
  console.log(`  HR_EMPLOYEES_URL=${simulator.employeesUrl}`);
  console.log(`  HR_DEPARTMENTS_URL=${simulator.departmentsUrl}`);
  if (!env.HR_EMPLOYEES_KEY?.trim()) console.log(`  HR_EMPLOYEES_KEY=${employeesKey}`);
  if (!env.HR_DEPARTMENTS_KEY?.trim()) console.log(`  HR_DEPARTMENTS_KEY=${departmentsKey}`);
  console.log(`Control: ${url}/__hr/fixture, ${url}/__hr/faults, ${url}/__hr/xml, ${url}/__hr/reset`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping HR simulator`);
    simulator.stop().then(
      () => process.exit(0),
      (error: unknown) => fail(`HR simulator did not stop cleanly: ${String(error)}`),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) =>
  fail(`HR simulator failed to start: ${error instanceof Error ? error.message : error}`),
);
