import t from 'tap';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';
import { TENANT_A_TOKEN, TENANT_B_TOKEN } from './lib/stack.js';

// What the dashboard offers follows what the API allows: a viewer sees no write action, a
// tenant's user sees its tenant only, even by URL; a wrong password says nothing more.

const stack = await startDashboardStack();
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
const inA = await stack.createKey({ name: 'tenant a key' }, TENANT_A_TOKEN);
const inB = await stack.createKey({ name: 'tenant b key' }, TENANT_B_TOKEN);

t.test('a wrong password is refused without saying which field was wrong', async (t) => {
  const page = await browser.newPage();
  await page.goto(`${stack.adminUrl}/dashboard`);
  await page.getByLabel('Email').fill(USERS.admin.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  t.equal(await alert.textContent(), 'Those credentials are not recognised: check the email and password, or the token.');
  t.same(await axeViolations(page), [], 'sign-in page with its error: axe');
  await page.close();
});

t.test('a viewer sees the keys and no write action anywhere', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.viewer);
  await page.getByRole('heading', { name: 'Recent keys' }).waitFor();
  await page.getByRole('link', { name: 'tenant a key' }).waitFor();
  t.equal(await page.getByRole('button', { name: /create/i }).count(), 0, 'overview: no create');
  t.same(await axeViolations(page), [], 'overview as a viewer: axe');
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Keys' }).click();
  await page.getByRole('link', { name: 'tenant b key' }).waitFor();
  t.equal(await page.getByRole('button', { name: 'Create key' }).count(), 0, 'keys: no create');
  await page.getByRole('link', { name: 'tenant a key' }).click();
  await page.getByRole('heading', { name: /tenant a key/ }).waitFor();
  await page.getByRole('heading', { name: 'Timeline' }).waitFor();
  for (const name of ['Suspend', 'Reactivate', 'Regenerate', 'Revoke']) {
    t.equal(await page.getByRole('button', { name }).count(), 0, `key detail: no ${name}`);
  }
  t.same(await axeViolations(page), [], 'key detail as a viewer: axe');
  await page.close();
});

t.test("a tenant's user lists its tenant's keys only and cannot open another tenant's key by URL", async (t) => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.tenantA);
  await page.goto(`${stack.adminUrl}/dashboard/keys`);
  await page.getByRole('link', { name: 'tenant a key' }).waitFor();
  t.equal(await page.getByRole('link', { name: 'tenant b key' }).count(), 0, 'the other tenant’s key is not listed');
  t.ok(await page.getByRole('button', { name: 'Create key' }).isVisible(), 'a developer may create');
  t.same(await axeViolations(page), [], 'keys at 390×844: axe');
  await page.goto(`${stack.adminUrl}/dashboard/keys/${inB.id}`);
  await page.getByRole('heading', { name: 'Key not found' }).waitFor();
  t.match(await page.getByRole('alert').textContent(), `No key with id ${inB.id}.`);
  await page.goto(`${stack.adminUrl}/dashboard/keys/${inA.id}`);
  await page.getByRole('button', { name: 'Suspend' }).waitFor();
  await page.close();
});
