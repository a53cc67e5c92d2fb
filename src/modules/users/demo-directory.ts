import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * The demo user directory loaded by `npm run seed` (SPEC §2): 20 users of mixed VIP levels,
 * companies, starred projects and employee numbers, so that a new user sees the system work at
 * once. Ids are fixed UUIDs, so tokens minted for them stay valid across re-seeding.
 */

export const DEMO_USER_ID = '00000000-0000-4000-8000-000000000001';

export interface DemoUser {
  id: string;
  name: string;
  vip: number;
  company: string;
  employeeNumber: string | null;
  githubStar: string;
  phone: string;
  email: string;
  githubName: string | null;
  createdAt: string;
  accessTime: string;
}

const COMPANIES = ['Acme', 'Globex', 'Initech', 'Umbrella'];
const STARS = ['zgsm-ai.zgsm', 'zgsm-ai.zgsm,openai.gpt-4', '', 'openai.gpt-4', 'zgsm-ai.zgsm, anthropic.claude'];
const NAMES = [
  'Demo User',
  'Li Lei',
  'Han Meimei',
  'Zhang Wei',
  'Wang Fang',
  'Liu Yang',
  'Chen Jing',
  'Yang Min',
  'Zhao Lei',
  'Huang Li',
  'Zhou Jie',
  'Wu Hua',
  'Xu Ming',
  'Sun Yu',
  'Ma Chao',
  'Zhu Ting',
  'Hu Bo',
  'Guo Xin',
  'He Ping',
  'Lin Tao',
];

export const demoUsers: DemoUser[] = NAMES.map((name, index) => {
  const n = index + 1;
  const pad = String(n).padStart(12, '0');
  return {
    id: `00000000-0000-4000-8000-${pad}`,
    name,
    vip: index % 4,
    company: COMPANIES[index % COMPANIES.length]!,
    // Every user but the last four has an employee number, matching the demo HR organisation.
    employeeNumber: n <= 16 ? String(n).padStart(6, '0') : null,
    githubStar: STARS[index % STARS.length]!,
    phone: `1380000${String(n).padStart(4, '0')}`,
    email: `user${n}@example.com`,
    githubName: n % 3 === 0 ? null : `demo-${n}`,
    // Registered over the last two years, seen recently or long ago: register-before/access-after have something to split.
    createdAt: new Date(Date.UTC(2025, (index * 5) % 24, 1 + index)).toISOString(),
    accessTime: new Date(Date.UTC(2026, index % 11, 10)).toISOString(),
  };
});

/**
 * Writes the demo directory. `auth_users` belongs to the login system; only this development tool
 * writes it, with an upsert so that re-seeding is harmless.
 */
export async function seedDemoDirectory(em: EntityManager): Promise<number> {
  for (const user of demoUsers) {
    await em.execute(
      `insert into auth_users (id, name, vip, company, employee_number, github_star, phone, email, github_name, created_at, updated_at, access_time)
       values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)
       on conflict (id) do update set name = excluded.name, vip = excluded.vip, company = excluded.company,
         employee_number = excluded.employee_number, github_star = excluded.github_star, phone = excluded.phone,
         email = excluded.email, github_name = excluded.github_name, created_at = excluded.created_at,
         access_time = excluded.access_time, updated_at = now()`,
      [
        user.id,
        user.name,
        user.vip,
        user.company,
        user.employeeNumber,
        user.githubStar,
        user.phone,
        user.email,
        user.githubName,
        user.createdAt,
        user.accessTime,
      ],
    );
  }
  return demoUsers.length;
}
