import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildDepartmentHierarchy } from '../../src/modules/employees/department-hierarchy.js';
import { decryptHrPayload } from '../../src/modules/employees/hr-crypto.js';
import { DEMO_ROOT_DEPARTMENT, generateHrFixture } from '../../src/modules/employees/hr-fixture.js';
import { parseDepartments, parseEmployees } from '../../src/modules/employees/hr-payload.js';
import { generateHrKey, HrSimulator, startHrSimulatorForEmbedded } from '../../src/modules/employees/hr-simulator.js';
import { demoUsers } from '../../src/modules/users/demo-directory.js';
import { DEPARTMENTS_KEY, EMPLOYEES_KEY } from './hr-support.js';

let hr: HrSimulator;

beforeAll(async () => {
  hr = new HrSimulator({ employeesKey: EMPLOYEES_KEY, departmentsKey: DEPARTMENTS_KEY });
  await hr.start(0);
});

afterAll(async () => {
  await hr?.stop();
});

beforeEach(() => hr.reset());

async function control(method: string, path: string, body?: unknown) {
  const response = await fetch(`${hr.url}/__hr/${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function feed(name: 'employees' | 'departments') {
  const response = await fetch(name === 'employees' ? hr.employeesUrl : hr.departmentsUrl);
  return { status: response.status, text: await response.text(), type: response.headers.get('content-type') };
}

describe('the generated demo organisation', () => {
  const fixture = generateHrFixture();
  const hierarchy = buildDepartmentHierarchy(parseDepartments(JSON.stringify(fixture.departments)));

  it('has four levels, 65 departments and 400 employees with badges 000001…000400', () => {
    expect(fixture.departments).toHaveLength(65);
    expect(fixture.employees).toHaveLength(400);
    expect(fixture.employees[0]?.badge).toBe('000001');
    expect(fixture.employees.at(-1)?.badge).toBe('000400');
    expect(Math.max(...[...hierarchy.paths.values()].map((path) => path.length))).toBe(4);
    expect(hierarchy.problems).toEqual([]);
    expect([...hierarchy.paths.values()].every((path) => path[0] === DEMO_ROOT_DEPARTMENT)).toBe(true);
  });

  it('has unique department names, and every employee in a known department', () => {
    expect(new Set(fixture.departments.map((d) => d.Name)).size).toBe(65);
    const ids = new Set(fixture.departments.map((d) => d.Id));
    expect(fixture.employees.every((employee) => ids.has(employee.DepID))).toBe(true);
  });

  it('contains the demo users 000001–000016 under their demo names', () => {
    for (const user of demoUsers.filter((u) => u.employeeNumber)) {
      const employee = fixture.employees.find((e) => e.badge === user.employeeNumber);
      expect(employee?.Name).toBe(user.name);
    }
  });

  it('is deterministic', () => {
    expect(generateHrFixture()).toEqual(fixture);
  });
});

describe('the feeds', () => {
  it('serve the fixture encrypted with each feed key (standard base64)', async () => {
    const employees = await feed('employees');
    expect(employees.status).toBe(200);
    expect(employees.text).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(parseEmployees(decryptHrPayload(employees.text, EMPLOYEES_KEY))).toHaveLength(400);
    const departments = await feed('departments');
    expect(parseDepartments(decryptHrPayload(departments.text, DEPARTMENTS_KEY))).toHaveLength(65);
    expect(() => decryptHrPayload(departments.text, EMPLOYEES_KEY)).toThrow();
  });

  it('serve the XML-wrapped form when asked', async () => {
    expect((await control('PUT', 'xml', { enabled: true })).status).toBe(200);
    const served = await feed('employees');
    expect(served.text.startsWith('<?xml version="1.0" encoding="utf-8"?><string xmlns="http://tempuri.org/">')).toBe(
      true,
    );
    expect(served.type).toContain('xml');
    expect(parseEmployees(decryptHrPayload(served.text, EMPLOYEES_KEY))).toHaveLength(400);
  });

  it('count requests', async () => {
    await feed('employees');
    await feed('employees');
    expect((await control('GET', 'requests')).body).toEqual({ employees: 2, departments: 0 });
  });

  it('answer 404 elsewhere', async () => {
    expect((await fetch(`${hr.url}/hr/other`)).status).toBe(404);
  });
});

describe('control: fixture', () => {
  it('replaces only the feeds given, and reads back', async () => {
    const employees = [{ badge: 'X1', Name: 'X', DepID: '1', email: '', TEL: '' }];
    expect((await control('PUT', 'fixture', { employees })).status).toBe(200);
    const fixture = (await control('GET', 'fixture')).body;
    expect(fixture.employees).toEqual(employees);
    expect(fixture.departments).toHaveLength(65);
    expect(JSON.parse(decryptHrPayload((await feed('employees')).text, EMPLOYEES_KEY))).toEqual(employees);
  });

  it('serves whatever JSON it is given (to test malformed payloads)', async () => {
    await control('PUT', 'fixture', { employees: { not: 'an array' } });
    expect(decryptHrPayload((await feed('employees')).text, EMPLOYEES_KEY)).toBe('{"not":"an array"}');
  });

  it('refuses a body that is not a JSON object', async () => {
    expect((await control('PUT', 'fixture', [1])).status).toBe(400);
    const response = await fetch(`${hr.url}/__hr/fixture`, { method: 'PUT', body: '{oops' });
    expect(response.status).toBe(400);
  });
});

describe('control: faults', () => {
  it('error: answers the status (default 500)', async () => {
    await control('PUT', 'faults', { employees: { kind: 'error' }, departments: { kind: 'error', status: 502 } });
    expect((await feed('employees')).status).toBe(500);
    expect((await feed('departments')).status).toBe(502);
  });

  it('times: the fault ends after that many requests', async () => {
    await control('PUT', 'faults', { employees: { kind: 'error', times: 2 } });
    expect((await feed('employees')).status).toBe(500);
    expect((await feed('employees')).status).toBe(500);
    expect((await feed('employees')).status).toBe(200);
    expect((await control('GET', 'faults')).body).toEqual({});
  });

  it('garbage: serves text that is not base64', async () => {
    await control('PUT', 'faults', { employees: { kind: 'garbage' } });
    const served = await feed('employees');
    expect(served.status).toBe(200);
    expect(() => decryptHrPayload(served.text, EMPLOYEES_KEY)).toThrow(/base64/);
  });

  it('wrong-key: serves a payload the configured key cannot decrypt', async () => {
    await control('PUT', 'faults', { departments: { kind: 'wrong-key' } });
    const served = await feed('departments');
    expect(served.text).toMatch(/^[A-Za-z0-9+/]+=*$/);
    // Refused by the decryption itself (bad padding, or not UTF-8), not later by the JSON parser.
    expect(() => parseDepartments(decryptHrPayload(served.text, DEPARTMENTS_KEY))).toThrow(
      /wrong key or corrupted data/,
    );
  });

  it('slow: delays the answer', async () => {
    await control('PUT', 'faults', { employees: { kind: 'slow', delayMs: 150 } });
    const started = Date.now();
    expect((await feed('employees')).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('DELETE clears every fault', async () => {
    await control('PUT', 'faults', { employees: { kind: 'error' } });
    expect((await control('DELETE', 'faults')).status).toBe(200);
    expect((await feed('employees')).status).toBe(200);
  });

  it.each([
    [{ employees: { kind: 'explode' } }],
    [{ employees: { kind: 'error', status: 99 } }],
    [{ employees: { kind: 'slow', delayMs: -1 } }],
    [{ employees: 'error' }],
  ])('refuses a bad fault %j', async (body) => {
    expect((await control('PUT', 'faults', body)).status).toBe(400);
  });

  it('reset restores the fixture, the faults and the request counts', async () => {
    await control('PUT', 'fixture', { employees: [] });
    await control('PUT', 'faults', { employees: { kind: 'error' } });
    expect((await control('POST', 'reset')).status).toBe(200);
    expect(parseEmployees(decryptHrPayload((await feed('employees')).text, EMPLOYEES_KEY))).toHaveLength(400);
    expect((await control('GET', 'requests')).body).toEqual({ employees: 1, departments: 0 });
  });
});

describe('embedded mode helper', () => {
  it('generates keys of 32 bytes and serves the demo organisation with them', async () => {
    const embedded = await startHrSimulatorForEmbedded({ hr: { employeesKey: null, departmentsKey: null } });
    try {
      expect(Buffer.byteLength(embedded.employeesKey)).toBe(32);
      expect(embedded.departmentsKey).not.toBe(embedded.employeesKey);
      const text = await (await fetch(embedded.employeesUrl)).text();
      expect(parseEmployees(decryptHrPayload(text, embedded.employeesKey))).toHaveLength(400);
      const departments = await (await fetch(embedded.departmentsUrl)).text();
      expect(parseDepartments(decryptHrPayload(departments, embedded.departmentsKey))).toHaveLength(65);
    } finally {
      await embedded.stop();
    }
  });

  it('keeps configured keys', async () => {
    const embedded = await startHrSimulatorForEmbedded({
      hr: { employeesKey: EMPLOYEES_KEY, departmentsKey: DEPARTMENTS_KEY },
    });
    try {
      expect(embedded.employeesKey).toBe(EMPLOYEES_KEY);
      expect(embedded.departmentsKey).toBe(DEPARTMENTS_KEY);
    } finally {
      await embedded.stop();
    }
  });

  it('generateHrKey makes keys of each AES size', () => {
    for (const size of [16, 24, 32] as const) expect(Buffer.byteLength(generateHrKey(size))).toBe(size);
  });
});
