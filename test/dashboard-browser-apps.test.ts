import t from 'tap';
import { hashPassword } from '../core/password.js';
import { axeViolations, dashboardUsers, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';
import { bearer, call, TENANT_A_ADMIN_TOKEN } from './lib/stack.js';

// The applications and policies pages in a real Chromium against a real gateway and admin
// plane: an admin creates an application, suspends it after a confirmation that says what
// happens to its keys (and the gateway then refuses them), and reactivates it; the policies of
// the configuration as a person reads them; a viewer and a developer see no write action.

// An admin of tenant a, beside the shared users: the application routes take the admin role, within the tenant.
const TENANT_ADMIN = { name: 'tom', email: 'tom@example.com', password: 'tenant a admin pass 1', role: 'admin', tenant: 'a' } as const;
const { password: tenantAdminPassword, ...tenantAdmin } = TENANT_ADMIN;
const users = [...(await dashboardUsers()), { ...tenantAdmin, password_hash: await hashPassword(tenantAdminPassword, { ln: 10, r: 8, p: 1 }) }];
const stack = await startDashboardStack({ users }, {
  overrides: () => ({
    policies: {
      partner: { description: 'Keys handed to partners', plan: 'tiny', expires_in_seconds: 90 * 86_400, ip_allowlist: ['203.0.113.0/24'], regeneration_grace_seconds: 3600 },
      internal: { rate_limit: { limit: 50, window_seconds: 60, burst: 80 }, allow_regeneration: false },
    },
  }),
});
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});

t.test('an admin creates an application, suspends it with its keys after a confirmation, and reactivates it', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Applications' }).click();
  await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
  await page.getByText('No applications yet.').waitFor();
  await page.getByRole('button', { name: 'Create application' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill('Checkout');
  await dialog.getByLabel('Description (optional)').fill('The web shop');
  t.same(await axeViolations(page), [], 'create dialog: axe');
  await dialog.getByRole('button', { name: 'Create application' }).click();
  const row = page.locator('tr', { hasText: 'Checkout' });
  await row.waitFor();
  t.match(await row.textContent(), /The web shop.*active.*none.*by ada/s, 'listed, active, no shared limit, created by the signed-in user');
  const appId = await row.getAttribute('data-app-id');
  t.match(appId, /^app_/);
  t.equal((await stack.adminCall('PATCH', `/v1/applications/${appId}`, { rate_limit: { limit: 1000, window_seconds: 60, burst: 50 } })).status, 200);
  await page.reload();
  await page.locator('tr', { hasText: 'Checkout' }).getByText('1000 requests / 60 s, burst 50').waitFor();

  const key = await stack.createKey({ name: 'checkout key', application: appId });
  t.equal((await call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(key.key) })).status, 200, 'the key works');

  await row.getByRole('button', { name: 'Suspend Checkout' }).click();
  await dialog.getByText('1 key it owns').waitFor();
  t.match(await dialog.locator('.warning').textContent(), 'requests with them are refused until the application is reactivated', 'the consequence, before it happens');
  t.same(await axeViolations(page), [], 'suspend confirmation: axe');
  await dialog.getByLabel(/Reason/).fill('card fraud');
  await dialog.getByRole('button', { name: 'Suspend application' }).click();
  await row.locator('.badge.status-suspended').waitFor();
  t.match(await row.textContent(), 'card fraud', 'the reason shows');
  const refused = await call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(key.key) });
  t.not(refused.status, 200, 'the gateway refuses the application’s key');
  t.same([refused.status, refused.body.error, refused.body.reason], [401, 'invalid_token', 'suspended']);

  await row.getByRole('button', { name: 'Reactivate Checkout' }).click();
  t.match(await dialog.locator('p').first().textContent(), 'Keys suspended on their own stay suspended');
  await dialog.getByRole('button', { name: 'Reactivate application' }).click();
  await row.locator('.badge.status-active').waitFor();
  t.equal((await call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(key.key) })).status, 200, 'the key works again');

  await page.getByLabel('Status').selectOption('suspended');
  await page.getByText('No applications match.').waitFor();
  await page.getByLabel('Status').selectOption('');
  await row.waitFor();
  t.same(await axeViolations(page), [], 'applications: axe');
  await page.close();
});

t.test('a key created in the dialog names an application and a policy, or a date; the keys page filters by application', async (t) => {
  const billing = await stack.adminCall('POST', '/v1/applications', { name: 'Billing' });
  t.equal(billing.status, 201);
  await stack.createKey({ name: 'not billing' });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.goto(`${stack.adminUrl}/dashboard/keys`);
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  const dialog = page.getByRole('dialog');
  const DAY = 86_400_000;

  /** Opens the dialog, fills step 1, skips to step 3 and runs `limits` there; answers the new key's record. */
  const create = async (name: string, step1: () => Promise<void>, limits: () => Promise<void>) => {
    await page.getByRole('button', { name: 'Create key' }).click();
    await dialog.getByLabel('Name').fill(name);
    await step1();
    await dialog.getByRole('button', { name: 'Next' }).click();
    await dialog.getByRole('button', { name: 'Next' }).click();
    await limits();
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await dialog.getByTestId('new-key').waitFor();
    await dialog.getByRole('button', { name: "I've saved my key" }).click();
    await dialog.waitFor({ state: 'detached' });
    const listed = await stack.adminCall('GET', `/v1/keys?q=${encodeURIComponent(name)}`);
    t.equal(listed.body.data.length, 1, `${name}: created once`);
    return listed.body.data[0];
  };

  const partner = await create(
    'partner key',
    async () => {
      await dialog.getByLabel('Application (optional)').selectOption({ label: 'Billing' });
      await dialog.getByLabel('Policy (optional)').selectOption('partner');
      await dialog.getByText('Keys handed to partners').waitFor();
      t.same(await axeViolations(page), [], 'create, step 1 with application and policy: axe');
    },
    async () => {
      await dialog.getByLabel('As the policy sets (90 days)').waitFor();
      t.ok(await dialog.getByLabel('As the policy sets (90 days)').isChecked(), 'the policy’s expiry is the default');
      await dialog.getByLabel(/empty: the policy's, 203\.0\.113\.0\/24/).waitFor();
    },
  );
  t.equal(partner.application, billing.body.id, 'the application chosen');
  t.equal(partner.policy, 'partner', 'the policy chosen');
  t.same(partner.ip_allowlist, ['203.0.113.0/24'], 'the allowlist left empty comes from the policy');
  t.equal(Date.parse(partner.expires_at) - Date.parse(partner.created_at), 90 * DAY, 'so does the expiry');

  const now = stack.clock.now();
  const day = new Date(now + 45 * DAY).toISOString().slice(0, 10);
  const dated = await create(
    'dated key',
    async () => {
      await dialog.getByLabel('Policy (optional)').selectOption('partner');
    },
    async () => {
      await dialog.getByLabel('On a date').check();
      const input = dialog.getByLabel('Expires at the end of (UTC)');
      await input.fill(new Date(now - DAY).toISOString().slice(0, 10));
      await dialog.getByText('Pick a day after today.').waitFor();
      t.ok(await dialog.getByRole('button', { name: 'Create key' }).isDisabled(), 'a day in the past is refused as it is picked');
      await input.fill(day);
      await dialog.getByText('The key stops working at 23:59:59 UTC that day.').waitFor();
      t.same(await axeViolations(page), [], 'create, step 3 with a date: axe');
    },
  );
  t.equal(dated.expires_at, `${day}T23:59:59.999Z`, 'the date picked overrides the policy’s expiry, to the end of that day');
  t.equal(dated.application, null, 'no application');

  const never = await create(
    'never key',
    async () => {
      await dialog.getByLabel('Policy (optional)').selectOption('partner');
    },
    async () => {
      await dialog.getByLabel('Never').check();
    },
  );
  t.equal(never.expires_at, null, '"Never" overrides the policy’s expiry');

  await page.getByLabel('Application').selectOption({ label: 'Billing' });
  await page.locator('tr', { hasText: 'not billing' }).waitFor({ state: 'detached' });
  const names = await page.locator('table.keys tbody tr td:first-child a').allTextContents();
  t.same(names, ['partner key'], 'only the application’s keys are listed');
  t.same(await axeViolations(page), [], 'keys filtered by application: axe');
  await page.close();
});

t.test('the policies of the configuration, as a person reads them', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Policies' }).click();
  const partner = page.locator('.card', { has: page.getByRole('heading', { name: 'partner' }) });
  await partner.waitFor();
  const text = (await partner.textContent())!;
  t.match(text, 'Keys handed to partners');
  t.match(text, 'plan tiny');
  t.match(text, '90 days after creation');
  t.match(text, '203.0.113.0/24');
  t.match(text, 'the old key works 1 hour more by default');
  const internal = (await page.locator('.card', { has: page.getByRole('heading', { name: 'internal' }) }).textContent())!;
  t.match(internal, '50 per minute, burst 80');
  t.match(internal, 'not by hand');
  t.same(await axeViolations(page), [], 'policies: axe');
  await page.close();
});

t.test('a viewer (at 390×844) and a developer see applications and policies with no write action', async (t) => {
  const app = await stack.adminCall('POST', '/v1/applications', { name: 'Read only app' });
  t.equal(app.status, 201);
  for (const [who, viewport] of [
    [USERS.viewer, { width: 390, height: 844 }],
    [USERS.tenantA, { width: 1280, height: 800 }],
  ] as const) {
    const page = await browser.newPage({ viewport });
    page.setDefaultTimeout(15_000);
    await signInPage(page, stack.adminUrl, who);
    await page.goto(`${stack.adminUrl}/dashboard/applications`);
    await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
    if (who.tenant === null) await page.getByText('Read only app').waitFor();
    else await page.getByText('No applications yet.').waitFor();
    for (const name of [/create/i, /suspend/i, /reactivate/i]) t.equal(await page.getByRole('button', { name }).count(), 0, `${who.role}: no ${name} button`);
    t.same(await axeViolations(page), [], `applications as ${who.role}: axe`);
    await page.goto(`${stack.adminUrl}/dashboard/policies`);
    await page.getByRole('heading', { name: 'partner' }).waitFor();
    t.same(await axeViolations(page), [], `policies as ${who.role}: axe`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    t.equal(overflow, 0, `${who.role}: nothing wider than the viewport`);
    await page.close();
  }
});

t.test("an admin gives an application a shared quota that two of its keys spend until 429, tops it up, and the audit log says so; a viewer sees no control", async (t) => {
  const created = await stack.adminCall('POST', '/v1/applications', { name: 'Metered app' });
  t.equal(created.status, 201);
  const appId: string = created.body.id;
  const one = await stack.createKey({ name: 'metered one', application: appId });
  const two = await stack.createKey({ name: 'metered two', application: appId });
  const spend = (key: string) => call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(key) });
  t.equal((await spend(one.key)).status, 200, 'before the quota: no bound but the rate limit');

  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.goto(`${stack.adminUrl}/dashboard/applications`);
  await page.getByRole('link', { name: 'Metered app' }).click();
  await page.getByRole('heading', { name: /Metered app/, level: 1 }).waitFor();
  await page.getByTestId('app-balance').filter({ hasText: 'No shared quota' }).waitFor();
  t.equal(await page.getByRole('button', { name: 'Top up or set balance' }).count(), 0, 'no top-up without a quota');

  await page.getByRole('button', { name: 'Edit quota' }).click();
  let dialog = page.getByRole('dialog', { name: 'Edit the quota of Metered app' });
  await dialog.getByLabel('Units per period').check();
  await dialog.getByLabel('Units', { exact: true }).fill('3');
  await dialog.getByRole('combobox', { name: 'Per' }).selectOption('day');
  await dialog.getByText('From the next request the keys of the application together may spend 3 units a day. It starts with 3.').waitFor();
  await dialog.getByText('requests with any of its keys are refused with 429 quota_exceeded until the next refill').waitFor();
  t.same(await axeViolations(page), [], 'application quota editor: axe');
  await dialog.getByRole('button', { name: 'Save quota' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'The shared quota of this application changed' }).waitFor();
  await page.getByTestId('app-balance').filter({ hasText: /^3 of 3 left today$/ }).waitFor();
  t.equal(await page.getByTestId('app-quota').textContent(), '3 a day');
  t.match(await page.getByTestId('app-quota-mode').textContent(), /^enforced: once spent, requests with any of its keys are refused/);
  t.match((await stack.adminCall('GET', `/v1/applications/${appId}`)).body.quota, { limit: 3, period: 'day', refill: true, mode: 'enforce' }, 'the PATCH sent the quota');

  const statuses = [];
  for (const key of [one.key, two.key, one.key, two.key]) statuses.push((await spend(key)).status);
  t.same(statuses, [200, 200, 200, 429], 'two keys share 3 units: the fourth request, whichever key, is refused');
  const refused = await spend(one.key);
  t.same([refused.status, refused.body.error], [429, 'quota_exceeded']);
  await page.reload();
  await page.getByTestId('app-balance').filter({ hasText: /^0 of 3 left today$/ }).waitFor();
  t.equal(await page.getByRole('progressbar', { name: 'Quota left of Metered app: 0 of 3' }).count(), 1);

  await page.getByRole('button', { name: 'Top up or set balance' }).click();
  dialog = page.getByRole('dialog', { name: 'Top up or set the balance of Metered app' });
  await dialog.getByLabel('Units').fill('2');
  await dialog.getByText('The balance goes from 0 to 2 at once, for every gateway.').waitFor();
  t.same(await axeViolations(page), [], 'application top-up dialog: axe');
  await dialog.getByRole('button', { name: 'Add units' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'The shared balance of this application is now 2' }).waitFor();
  await page.getByTestId('app-balance').filter({ hasText: /^2 of 3 left today$/ }).waitFor();
  t.equal((await spend(two.key)).status, 200, 'the top-up lets a request of either key through');
  t.same(await axeViolations(page), [], 'application page: axe');

  await page.goto(`${stack.adminUrl}/dashboard/applications`);
  const listed = page.locator('tr', { hasText: 'Metered app' });
  await listed.getByTestId('balance-indicator').filter({ hasText: 'quota 1 of 3 left' }).waitFor();
  t.match(await listed.textContent(), /no rate limit\s*quota 1 of 3 left/, 'the list: a shared quota and no shared rate limit');
  await page.goto(`${stack.adminUrl}/dashboard/audit`);
  const entry = page.locator('tr', { hasText: 'Application’s shared balance topped up or set' });
  await entry.waitFor();
  t.match(await entry.textContent(), /ada.*application\.credits_changed.*app_.*balance: 0 → 2/s, 'labelled, with its code, target and change');
  t.same(await axeViolations(page), [], 'audit log with the application entry: axe');
  await page.close();

  const viewer = await browser.newPage({ viewport: { width: 390, height: 844 } });
  viewer.setDefaultTimeout(15_000);
  await signInPage(viewer, stack.adminUrl, USERS.viewer);
  await viewer.goto(`${stack.adminUrl}/dashboard/applications/${appId}`);
  await viewer.getByTestId('app-balance').filter({ hasText: /^1 of 3 left today$/ }).waitFor();
  for (const name of ['Edit quota', 'Top up or set balance']) t.equal(await viewer.getByRole('button', { name }).count(), 0, `viewer: no ${name} button`);
  t.same(await axeViolations(viewer), [], 'application page as viewer: axe');
  t.equal(await viewer.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth), 0, 'application page at 390×844: nothing wider than the viewport');
  await viewer.close();
});

t.test("a tenant's admin sets its application's shared balance on the page; the tenant's developer sees neither quota action", async (t) => {
  const created = await stack.adminCall('POST', '/v1/applications', { name: 'Tenant app', credits: { remaining: 10, refill: null } }, TENANT_A_ADMIN_TOKEN);
  t.equal(created.status, 201);
  const path = `${stack.adminUrl}/dashboard/applications/${created.body.id}`;

  const admin = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  admin.setDefaultTimeout(15_000);
  await signInPage(admin, stack.adminUrl, TENANT_ADMIN);
  await admin.goto(path);
  await admin.getByTestId('app-balance').filter({ hasText: /^10 left$/ }).waitFor();
  t.equal(await admin.getByTestId('app-quota').textContent(), 'credits: 10 to start, topped up by hand');
  await admin.getByRole('button', { name: 'Top up or set balance' }).click();
  const dialog = admin.getByRole('dialog', { name: 'Top up or set the balance of Tenant app' });
  await dialog.getByLabel('Set the balance to').check();
  await dialog.getByLabel('Units').fill('0');
  await dialog.getByText('With nothing left, requests with any of its keys are refused until a top-up.').waitFor();
  await dialog.getByRole('button', { name: 'Set balance' }).click();
  await admin.getByTestId('app-balance').filter({ hasText: /^0 left$/ }).waitFor();
  t.equal((await stack.adminCall('GET', `/v1/applications/${created.body.id}`)).body.balance.remaining, 0, "the tenant's admin set it");
  await admin.close();

  const developer = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  developer.setDefaultTimeout(15_000);
  await signInPage(developer, stack.adminUrl, USERS.tenantA);
  await developer.goto(path);
  await developer.getByTestId('app-balance').filter({ hasText: /^0 left$/ }).waitFor();
  for (const name of ['Edit quota', 'Top up or set balance']) t.equal(await developer.getByRole('button', { name }).count(), 0, `a developer, who writes keys but not applications: no ${name} button`);
  await developer.close();
});
