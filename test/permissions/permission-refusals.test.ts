import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';
import {
  EFFECTIVE,
  insertEmployees,
  insertUsers,
  PERMISSION_TABLES,
  permissionApi,
  permissionCalls,
  SET_SWITCH,
  SET_WHITELIST,
} from './permission-support.js';

/**
 * Every refusal of SPEC §6 answers its code and changes nothing: no settings, no effective records,
 * no audit rows, no gateway call. The state is seeded once (so "nothing changed" is checked against
 * existing settings too) and compared row for row after each refused call.
 */

let t: TestApp;
let api: ReturnType<typeof permissionApi>;

async function snapshot(): Promise<Record<string, unknown[]>> {
  const em = t.app.services.orm.em.fork();
  const tables: Record<string, unknown[]> = {};
  for (const table of PERMISSION_TABLES) tables[table] = await em.execute(`select * from ${table} order by id`);
  return tables;
}

beforeAll(async () => {
  t = await startTestApp({ label: 'permission_refusals', env: { HR_SYNC_ENABLED: 'true' } });
  api = permissionApi(t);
  await insertEmployees(t, [
    { number: 'E1', path: ['Corp', 'R&D'] },
    { number: 'E2', path: ['Corp', 'Sales'] },
  ]);
  await insertUsers(t, [
    { id: 'user-e1', employeeNumber: 'E1' },
    { id: 'user-no-number' },
    { id: 'user-not-in-hr', employeeNumber: 'E404' },
  ]);
  await api.whitelist({ departmentName: 'R&D', models: ['existing'] });
  await api.switchOn({ kind: 'STAR_CHECK', user: { employeeNumber: 'E2' }, enabled: true });
});

afterAll(async () => {
  await t?.stop();
});

const fiftyOne = Array.from({ length: 51 }, (_, i) => `m${i}`);

const whitelistCases: [string, Record<string, unknown>, string][] = [
  [
    'both user and department',
    { user: { employeeNumber: 'E1' }, departmentName: 'R&D', models: ['a'] },
    'BAD_USER_INPUT',
  ],
  ['neither user nor department', { models: ['a'] }, 'BAD_USER_INPUT'],
  ['a user ref with both ids', { user: { userId: 'user-e1', employeeNumber: 'E1' }, models: ['a'] }, 'BAD_USER_INPUT'],
  ['an empty user ref', { user: {}, models: ['a'] }, 'BAD_USER_INPUT'],
  ['an unknown user id', { user: { userId: 'nobody' }, models: ['a'] }, 'USER_NOT_FOUND'],
  ['an unknown employee number', { user: { employeeNumber: 'E999' }, models: ['a'] }, 'USER_NOT_FOUND'],
  ['a user without employee number', { user: { userId: 'user-no-number' }, models: ['a'] }, 'USER_NOT_FOUND'],
  ['a user whose number HR does not know', { user: { userId: 'user-not-in-hr' }, models: ['a'] }, 'USER_NOT_FOUND'],
  ['an unknown department', { departmentName: 'Marketing', models: ['a'] }, 'DEPARTMENT_NOT_FOUND'],
  ['a substring of a department', { departmentName: 'R&', models: ['a'] }, 'DEPARTMENT_NOT_FOUND'],
  ['a whole path instead of an element', { departmentName: 'Corp,R&D', models: ['a'] }, 'DEPARTMENT_NOT_FOUND'],
  ['an empty department name', { departmentName: '', models: ['a'] }, 'BAD_USER_INPUT'],
  ['51 models', { departmentName: 'R&D', models: fiftyOne }, 'BAD_USER_INPUT'],
  ['a model with a comma', { departmentName: 'R&D', models: ['gpt-4,claude'] }, 'BAD_USER_INPUT'],
  ['an empty model name', { departmentName: 'R&D', models: ['ok', ''] }, 'BAD_USER_INPUT'],
  ['a blank model name', { departmentName: 'R&D', models: ['   '] }, 'BAD_USER_INPUT'],
  ['a 101-character model name', { departmentName: 'R&D', models: ['x'.repeat(101)] }, 'BAD_USER_INPUT'],
  [
    'a switch kind on the whitelist operation',
    { departmentName: 'R&D', models: ['a'], kind: 'STAR_CHECK' },
    'BAD_USER_INPUT',
  ],
  ['an unknown action', { departmentName: 'R&D', models: ['a'], action: 'APPEND' }, 'BAD_USER_INPUT'],
  ['models missing', { departmentName: 'R&D' }, 'BAD_USER_INPUT'],
];

const switchCases: [string, Record<string, unknown>, string][] = [
  ['MODEL on setSwitch', { kind: 'MODEL', departmentName: 'R&D', enabled: true }, 'BAD_USER_INPUT'],
  [
    'both user and department',
    { kind: 'STAR_CHECK', user: { employeeNumber: 'E1' }, departmentName: 'R&D', enabled: true },
    'BAD_USER_INPUT',
  ],
  ['neither user nor department', { kind: 'QUOTA_CHECK', enabled: true }, 'BAD_USER_INPUT'],
  ['an unknown user', { kind: 'STAR_CHECK', user: { userId: 'nobody' }, enabled: true }, 'USER_NOT_FOUND'],
  [
    'an unknown department',
    { kind: 'QUOTA_CHECK', departmentName: 'Marketing', enabled: false },
    'DEPARTMENT_NOT_FOUND',
  ],
  ['enabled missing', { kind: 'QUOTA_CHECK', departmentName: 'R&D' }, 'BAD_USER_INPUT'],
  ['enabled not a boolean', { kind: 'QUOTA_CHECK', departmentName: 'R&D', enabled: 'yes' }, 'BAD_USER_INPUT'],
];

describe('refused inputs change nothing', () => {
  it.each(whitelistCases)('setModelWhitelist with %s → %s', async (_name, input, code) => {
    const before = await snapshot();
    t.simulator.clearCalls();
    const response = await t.gql(SET_WHITELIST, { input }, { token: t.adminToken });
    expect(errorCode(response)).toBe(code);
    expect(response.data?.setModelWhitelist ?? null).toBeNull();
    expect(await snapshot()).toEqual(before);
    expect(permissionCalls(t.simulator)).toEqual([]);
  });

  it.each(switchCases)('setSwitch with %s → %s', async (_name, input, code) => {
    const before = await snapshot();
    t.simulator.clearCalls();
    const response = await t.gql(SET_SWITCH, { input }, { token: t.adminToken });
    expect(errorCode(response)).toBe(code);
    expect(await snapshot()).toEqual(before);
    expect(permissionCalls(t.simulator)).toEqual([]);
  });

  it('USER_NOT_FOUND names the identifier', async () => {
    const response = await api.setWhitelist({ user: { employeeNumber: 'E999' }, models: ['a'] });
    expect(response.errors?.[0]?.message).toContain('E999');
    const department = await api.setWhitelist({ departmentName: 'Marketing', models: ['a'] });
    expect(department.errors?.[0]?.message).toContain('Marketing');
  });

  it('the same refusals apply to the read operations', async () => {
    const reads: [string, Record<string, unknown>, string][] = [
      [
        'query { modelWhitelist(departmentName: "R&D", user: { employeeNumber: "E1" }) { models } }',
        {},
        'BAD_USER_INPUT',
      ],
      ['query { modelWhitelist { models } }', {}, 'BAD_USER_INPUT'],
      ['query { modelWhitelist(departmentName: "Nope") { models } }', {}, 'DEPARTMENT_NOT_FOUND'],
      ['query { switchSetting(kind: MODEL, departmentName: "R&D") { enabled } }', {}, 'BAD_USER_INPUT'],
      ['query { switchSetting(kind: STAR_CHECK, user: { userId: "nobody" }) { enabled } }', {}, 'USER_NOT_FOUND'],
      [EFFECTIVE, { kind: 'MODEL', targetType: 'USER', id: 'nobody' }, 'USER_NOT_FOUND'],
      [EFFECTIVE, { kind: 'STAR_CHECK', targetType: 'USER', id: 'user-no-number' }, 'USER_NOT_FOUND'],
      [EFFECTIVE, { kind: 'MODEL', targetType: 'DEPARTMENT', id: 'R&' }, 'DEPARTMENT_NOT_FOUND'],
      [EFFECTIVE, { kind: 'MODEL', targetType: 'USER', id: '  ' }, 'BAD_USER_INPUT'],
      [EFFECTIVE, { kind: 'MODEL', targetType: 'USER', id: 'x'.repeat(201) }, 'BAD_USER_INPUT'],
      ['query { permissionAudits(first: 101) { totalCount } }', {}, 'BAD_USER_INPUT'],
      ['query { permissionAudits(after: "not-a-cursor") { totalCount } }', {}, 'BAD_USER_INPUT'],
    ];
    for (const [query, variables, code] of reads) {
      const response = await t.gql(query, variables, { token: t.adminToken });
      expect([query, variables, errorCode(response)]).toEqual([query, variables, code]);
    }
  });
});

describe('authorization', () => {
  const operations: [string, Record<string, unknown>][] = [
    [SET_WHITELIST, { input: { departmentName: 'R&D', models: ['a'] } }],
    [SET_SWITCH, { input: { kind: 'STAR_CHECK', departmentName: 'R&D', enabled: true } }],
    ['query { modelWhitelist(departmentName: "R&D") { models } }', {}],
    ['query { switchSetting(kind: STAR_CHECK, departmentName: "R&D") { enabled } }', {}],
    [EFFECTIVE, { kind: 'MODEL', targetType: 'USER', id: 'E1' }],
    ['query { permissionAudits { totalCount } }', {}],
  ];

  it.each(operations)('a user gets FORBIDDEN and no token UNAUTHENTICATED: %s', async (query, variables) => {
    const before = await snapshot();
    t.simulator.clearCalls();
    expect(errorCode(await t.gql(query, variables, { token: t.userToken }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(query, variables))).toBe('UNAUTHENTICATED');
    expect(await snapshot()).toEqual(before);
    expect(permissionCalls(t.simulator)).toEqual([]);
  });
});
