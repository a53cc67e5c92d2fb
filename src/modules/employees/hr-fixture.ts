import { demoUsers } from '../users/demo-directory.js';

/**
 * The demo organisation served by the HR simulator and loaded by `npm run seed`: four levels, 65
 * departments, 400 employees, generated deterministically (same input, same org, every time).
 * Badges run 000001…000400, so the demo directory's employee numbers 000001–000016 exist, with the
 * same names as the demo users. Records have the HR feed's own field names.
 */

export interface HrEmployeeRecord {
  badge: string;
  Name: string;
  DepID: string;
  email: string;
  TEL: string;
}

export interface HrDepartmentRecord {
  Id: string;
  AdminId: number;
  Name: string;
  DepGrade: number;
  DepartmentStatus: number;
}

export interface HrFixture {
  employees: HrEmployeeRecord[];
  departments: HrDepartmentRecord[];
}

export const DEMO_ROOT_DEPARTMENT = 'Acme Group';

const DIVISIONS: [string, string[]][] = [
  ['Research', ['AI Lab', 'Data Science', 'Product Research']],
  ['Engineering', ['Platform', 'Applications', 'Quality']],
  ['Sales', ['Enterprise Sales', 'Channel Sales', 'Presales']],
  ['Operations', ['Finance', 'People', 'IT Services']],
];
const TEAMS = ['Alpha Team', 'Beta Team', 'Gamma Team', 'Delta Team'];

const FAMILY_NAMES = ['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Xu', 'Sun', 'Ma'];
const GIVEN_NAMES = ['Wei', 'Fang', 'Na', 'Min', 'Jing', 'Lei', 'Qiang', 'Yan', 'Jun', 'Tao', 'Ping', 'Hui', 'Bo'];

export const DEMO_EMPLOYEE_COUNT = 400;

export function generateHrFixture(employeeCount = DEMO_EMPLOYEE_COUNT): HrFixture {
  const departments: HrDepartmentRecord[] = [];
  let nextId = 1;
  const add = (name: string, parent: number, grade: number): number => {
    const id = nextId++;
    departments.push({ Id: String(id), AdminId: parent, Name: name, DepGrade: grade, DepartmentStatus: 1 });
    return id;
  };

  const root = add(DEMO_ROOT_DEPARTMENT, 0, 1);
  // Employees sit in teams (leaves) mostly, and some in the departments above them (their managers).
  const homes: number[] = [];
  for (const [division, groups] of DIVISIONS) {
    const divisionId = add(division, root, 2);
    homes.push(divisionId);
    for (const group of groups) {
      const groupId = add(group, divisionId, 3);
      homes.push(groupId);
      for (const team of TEAMS) homes.push(add(`${group} ${team}`, groupId, 4));
    }
  }

  const employees: HrEmployeeRecord[] = [];
  for (let n = 1; n <= employeeCount; n++) {
    const badge = String(n).padStart(6, '0');
    const demo = demoUsers.find((user) => user.employeeNumber === badge);
    const name =
      demo?.name ??
      `${FAMILY_NAMES[n % FAMILY_NAMES.length]} ${GIVEN_NAMES[(n * 7) % GIVEN_NAMES.length]} ${String(n).padStart(3, '0')}`;
    employees.push({
      badge,
      Name: name,
      // A fixed stride over the homes spreads people over every department, the same way every run.
      DepID: String(homes[(n * 17) % homes.length]),
      email: `employee${badge}@acme.example`,
      TEL: `139${String(n).padStart(8, '0')}`,
    });
  }
  return { employees, departments };
}
