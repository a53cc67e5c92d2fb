import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorCode, startTestApp, type TestApp } from '../support/app.js';

/** `employees` and `departments` over real HTTP (contract: admin only, EmployeeConnection). */

let t: TestApp;

const EMPLOYEES = `query Employees($departmentName: String, $search: String, $first: Int, $after: String, $offset: Int) {
  employees(departmentName: $departmentName, search: $search, first: $first, after: $after, offset: $offset) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { employeeNumber } }
    nodes { employeeNumber username departmentPath updatedAt }
  }
}`;

// A type alias (not an interface) so it fits errorCode()'s Record<string, unknown>.
type EmployeesData = {
  employees: {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
    edges: { cursor: string; node: { employeeNumber: string } }[];
    nodes: { employeeNumber: string; username: string; departmentPath: string[]; updatedAt: string }[];
  };
};

beforeAll(async () => {
  t = await startTestApp({ label: 'employees_graphql' });
  const rows = Array.from({ length: 25 }, (_, index) => {
    const n = String(index + 1).padStart(6, '0');
    const path = index % 2 === 0 ? 'Acme,Engineering,Platform' : 'Acme,Sales';
    return `('${n}', 'Person ${n}', '${path}')`;
  });
  await t.app.services.orm.em
    .fork()
    .execute(
      `insert into employee_department (employee_number, username, dept_full_level_names) values ${rows.join(',')}`,
    );
});

afterAll(async () => {
  await t?.stop();
});

async function employees(variables: Record<string, unknown> = {}) {
  return t.gql<EmployeesData>(EMPLOYEES, variables, { token: t.adminToken });
}

describe('employees', () => {
  it('lists employees ordered by employee number, 20 per page by default', async () => {
    const response = await employees();
    expect(response.errors).toBeUndefined();
    const page = response.data!.employees;
    expect(page.totalCount).toBe(25);
    expect(page.nodes).toHaveLength(20);
    expect(page.nodes[0]).toMatchObject({
      employeeNumber: '000001',
      username: 'Person 000001',
      departmentPath: ['Acme', 'Engineering', 'Platform'],
    });
    expect(new Date(page.nodes[0]!.updatedAt).getTime()).not.toBeNaN();
    expect(page.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
    expect(page.edges[0]?.node.employeeNumber).toBe('000001');
  });

  it('pages with after and offset', async () => {
    const first = (await employees({ first: 10 })).data!.employees;
    const second = (await employees({ first: 10, after: first.pageInfo.endCursor })).data!.employees;
    expect(second.nodes[0]?.employeeNumber).toBe('000011');
    const jumped = (await employees({ first: 10, offset: 20 })).data!.employees;
    expect(jumped.nodes.map((node) => node.employeeNumber)).toEqual(['000021', '000022', '000023', '000024', '000025']);
    expect(jumped.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
  });

  it('filters by department (any path element, so sub-departments are included)', async () => {
    expect((await employees({ departmentName: 'Engineering' })).data!.employees.totalCount).toBe(13);
    expect((await employees({ departmentName: 'Platform' })).data!.employees.totalCount).toBe(13);
    expect((await employees({ departmentName: 'Acme' })).data!.employees.totalCount).toBe(25);
    expect((await employees({ departmentName: 'Sales' })).data!.employees.totalCount).toBe(12);
    expect((await employees({ departmentName: 'Engine' })).data!.employees.totalCount).toBe(0);
  });

  it('searches username or employee number, case-insensitive', async () => {
    expect((await employees({ search: 'person 00001' })).data!.employees.totalCount).toBe(10);
    expect((await employees({ search: '000025' })).data!.employees.nodes.map((n) => n.employeeNumber)).toEqual([
      '000025',
    ]);
    const both = (await employees({ search: '00002', departmentName: 'Sales' })).data!.employees;
    expect(both.nodes.map((node) => node.employeeNumber)).toEqual(['000002', '000020', '000022', '000024']);
  });

  it.each([
    [{ first: 0 }],
    [{ first: 101 }],
    [{ offset: -1 }],
    [{ after: 'not-a-cursor!' }],
    [{ search: 'x'.repeat(201) }],
    [{ departmentName: 'x'.repeat(201) }],
  ])('refuses %j with BAD_USER_INPUT', async (variables) => {
    const response = await employees(variables);
    expect(errorCode(response)).toBe('BAD_USER_INPUT');
    expect(response.data).toBeNull();
  });

  it('is for administrators only', async () => {
    expect(errorCode(await t.gql(EMPLOYEES, {}, { token: t.userToken }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql(EMPLOYEES, {}))).toBe('UNAUTHENTICATED');
  });
});

describe('departments', () => {
  it('lists every path element once, sorted', async () => {
    const response = await t.gql<{ departments: string[] }>('{ departments }', {}, { token: t.adminToken });
    expect(response.data?.departments).toEqual(['Acme', 'Engineering', 'Platform', 'Sales']);
  });

  it('is for administrators only', async () => {
    expect(errorCode(await t.gql('{ departments }', {}, { token: t.userToken }))).toBe('FORBIDDEN');
    expect(errorCode(await t.gql('{ departments }', {}))).toBe('UNAUTHENTICATED');
  });
});
