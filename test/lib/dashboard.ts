import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { request } from 'undici';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hashPassword } from '../../core/password.js';
import { startStack, type Stack, type StackOptions } from './stack.js';

/** Dashboard users of the tests; hashed with a low scrypt cost (ln=10) so that sign-in stays quick. */
export const USERS = {
  admin: { name: 'ada', email: 'ada@example.com', password: 'correct horse battery staple', role: 'admin', tenant: null },
  viewer: { name: 'vic', email: 'vic@example.com', password: 'viewer password 123', role: 'viewer', tenant: null },
  tenantA: { name: 'tia', email: 'tia@example.com', password: 'tenant a password 1', role: 'developer', tenant: 'a' },
} as const;

let hashed: Promise<Record<string, unknown>[]> | undefined;
export function dashboardUsers(): Promise<Record<string, unknown>[]> {
  hashed ??= Promise.all(
    Object.values(USERS).map(async ({ password, ...u }) => ({ ...u, password_hash: await hashPassword(password, { ln: 10, r: 8, p: 1 }) })),
  );
  return hashed;
}

/** A stack (gateway, admin, upstream on loopback) with the dashboard users and a quick usage flush. */
export async function startDashboardStack(dashboard: Record<string, unknown> = {}, options: StackOptions = {}): Promise<Stack> {
  const users = await dashboardUsers();
  return startStack({
    ...options,
    overrides: (up) => ({ dashboard: { users, ...dashboard }, usage: { flush_interval_ms: 50 }, ...options.overrides?.(up) }),
  });
}

export interface SignedIn {
  cookie: string;
  setCookie: string;
  csrf: string;
  body: any;
}

/** Signs in over HTTP as a page of the dashboard would; throws unless it succeeds. */
export async function signIn(adminUrl: string, credentials: Record<string, string>): Promise<SignedIn> {
  const res = await request(`${adminUrl}/dashboard/api/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: adminUrl },
    body: JSON.stringify(credentials),
  });
  const body = (await res.body.json()) as any;
  if (res.statusCode !== 200) throw new Error(`sign-in: ${res.statusCode} ${JSON.stringify(body)}`);
  const setCookie = String(res.headers['set-cookie']);
  return { setCookie, cookie: setCookie.split(';')[0]!, csrf: body.csrf_token, body };
}

/** A call to the admin plane with a session cookie; `csrf` and `origin` are sent when given. */
export async function sessionCall(
  adminUrl: string,
  method: string,
  path: string,
  options: { cookie?: string; csrf?: string; origin?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie !== undefined) headers['cookie'] = options.cookie;
  if (options.csrf !== undefined) headers['x-csrf-token'] = options.csrf;
  if (options.origin !== undefined) headers['origin'] = options.origin;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await request(adminUrl + path, {
    method: method as 'GET',
    headers,
    body: options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
  });
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.statusCode, body, headers: res.headers };
}

/**
 * Debian's chromium through playwright-core. Playwright gives each launch a fresh temporary
 * profile (its own --user-data-dir); the flags keep the browser from reaching the network,
 * which is closed here anyway.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * The serious and critical axe-core violations of the page as it is now. axe is evaluated
 * through the DevTools protocol, which the page's Content-Security-Policy does not govern, so
 * the page is checked under its real policy.
 */
export async function axeViolations(page: Page): Promise<{ id: string; impact: string; nodes: string[] }[]> {
  // Once per document: the dashboard moves between its pages without loading a new one.
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const axe = (globalThis as any).axe;
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v: any) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n: any) => n.target.join(' ')) }));
  });
  return (result as { id: string; impact: string; nodes: string[] }[]).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Signs in through the page's form. */
export async function signInPage(page: Page, adminUrl: string, user: { email: string; password: string }): Promise<void> {
  await page.goto(`${adminUrl}/dashboard`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('navigation', { name: 'Dashboard' }).waitFor();
}
