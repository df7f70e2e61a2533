import t from 'tap';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';
import { bearer, call } from './lib/stack.js';
import { waitFor, within } from './lib/within.js';

// An admin's walk through the key workflow in a real Chromium, against a real gateway and
// admin plane on loopback: sign in, create a key in the modal, use it, see it counted,
// regenerate one with grace, revoke one after re-entering the password; axe on every page.

const stack = await startDashboardStack();
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const offOrigin: string[] = [];
const cspErrors: string[] = [];
page.on('request', (r) => {
  if (!r.url().startsWith(stack.adminUrl + '/') && !r.url().startsWith('data:')) offOrigin.push(r.url());
});
page.on('console', (m) => {
  if (/Content.Security.Policy/i.test(m.text())) cspErrors.push(m.text());
});
page.setDefaultTimeout(15_000);

t.test('sign in, create a key through the modal, read it once from the success view', async (t) => {
  await page.goto(`${stack.adminUrl}/dashboard`);
  t.same(await axeViolations(page), [], 'sign-in page: no serious or critical axe violation');
  await signInPage(page, stack.adminUrl, USERS.admin);
  t.same(await axeViolations(page), [], 'overview: axe');

  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Keys' }).click();
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  await page.getByRole('button', { name: 'Create key' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill('browser key');
  await dialog.getByLabel('production').check();
  t.same(await axeViolations(page), [], 'create modal, step 1: axe');
  await dialog.getByRole('button', { name: 'Next' }).click();
  await dialog.getByLabel('send_email').check();
  t.equal(await dialog.locator('label', { hasText: 'write_campaigns' }).locator('.badge.dangerous').textContent(), 'dangerous', 'a scope the catalog marks dangerous says so');
  t.equal(await dialog.locator('label', { hasText: 'send_email' }).locator('.badge.dangerous').count(), 0, 'the others do not');
  await dialog.getByRole('button', { name: 'Next' }).click();
  await dialog.getByLabel(/Allowed IP addresses/).fill('10.0.0.0/8, nonsense');
  await dialog.getByText('"nonsense" is not an IP address or CIDR').waitFor();
  t.ok(await dialog.getByRole('button', { name: 'Create key' }).isDisabled(), 'an invalid address is flagged as typed');
  await dialog.getByLabel(/Allowed IP addresses/).fill('');
  await dialog.getByLabel('Units per period').check();
  t.ok(await dialog.getByRole('button', { name: 'Create key' }).isDisabled(), 'a quota without its units cannot be sent');
  await dialog.getByLabel('Units', { exact: true }).fill('1000');
  t.same(await axeViolations(page), [], 'create modal, step 3 with a quota: axe');
  await dialog.getByRole('button', { name: 'Create key' }).click();

  const shown = dialog.getByTestId('new-key');
  await shown.waitFor();
  const key = (await shown.textContent())!;
  t.match(key, /^gw_live_/, 'the key is shown');
  await dialog.getByText('it will not be shown again').waitFor();
  t.match(await dialog.locator('pre code').textContent(), /^curl /, 'with a curl example');
  t.same(await axeViolations(page), [], 'success view: axe');
  await dialog.getByRole('button', { name: "I've saved my key" }).click();
  await dialog.waitFor({ state: 'detached' });
  t.notOk((await page.content()).includes(key), 'the key is gone from the page');
  const row = page.locator('tr', { hasText: 'browser key' });
  await row.waitFor();
  t.match(await row.textContent(), /by ada/, 'created by the signed-in user');
  await row.getByTestId('balance-indicator').filter({ hasText: /^quota 1K of 1K left$/ }).waitFor();
  t.pass('with the quota it was created with, in the list');
  t.same(await axeViolations(page), [], 'keys page: axe');

  // The key works through the gateway, and the request is counted on the usage page and the key's.
  const sent = await call(`${stack.gw['production']}/v1/emails/send`, { method: 'POST', headers: bearer(key), body: '{}' });
  t.equal(sent.status, 200, 'the new key works through the gateway');
  await waitFor(() => stack.upstream.seen.length > 0, 5_000, 'upstream reached');
  // Usage reaches the store on the recorder's flush (every 50 ms here).
  await within(
    (async () => {
      while ((await stack.adminCall('GET', '/v1/usage?range=24h')).body.totals.requests < 1) await new Promise((r) => setTimeout(r, 20));
    })(),
    10_000,
    'the request recorded',
  );
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Usage' }).click();
  await page.getByTestId('total-requests').waitFor();
  t.equal(await page.getByTestId('total-requests').textContent(), '1', 'usage page counts it');
  t.ok(await page.getByRole('img', { name: /Request volume: 1 requests/ }).isVisible(), 'the chart shows it');
  t.same(await axeViolations(page), [], 'usage page: axe');

  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Keys' }).click();
  await page.getByRole('link', { name: 'browser key' }).click();
  await page.getByRole('heading', { name: /browser key/ }).waitFor();
  await page.getByTestId('key-requests').filter({ hasText: '1' }).waitFor();
  t.same(await axeViolations(page), [], 'key detail: axe');
});

t.test('regenerate with a grace period: the confirmation says what happens to the old key; the new key is shown once', async (t) => {
  const { id } = await stack.createKey({ name: 'to regenerate' });
  await page.goto(`${stack.adminUrl}/dashboard/keys/${id}`);
  await page.getByRole('button', { name: 'Regenerate' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByText('A new key with the same settings is issued and shown once.').waitFor();
  await dialog.getByLabel('Keep the old key working for 1 hour').check();
  t.same(await axeViolations(page), [], 'confirmation: axe');
  await dialog.getByRole('button', { name: 'Regenerate key' }).click();
  const fresh = page.getByRole('dialog').getByTestId('new-key');
  await fresh.waitFor();
  t.match(await fresh.textContent(), /^gw_live_/);
  await page.getByRole('button', { name: "I've saved my key" }).click();
  await page.getByText('old key works until').waitFor();
  const old = await stack.adminCall('GET', `/v1/keys/${id}`);
  t.ok(old.body.replaced_by, 'the old key points to its successor');
  t.equal(old.body.grace_ends_at, new Date(stack.clock.now() + 3600_000).toISOString(), 'and works for the hour chosen');
});

t.test('revoke after the sudo window: the password is asked again, the key is marked revoked, in its page and in the list', async (t) => {
  const { id } = await stack.createKey({ name: 'to revoke' });
  stack.clock.advance(6 * 60_000);
  await page.goto(`${stack.adminUrl}/dashboard/keys/${id}`);
  await page.getByRole('button', { name: 'Revoke' }).click();
  const confirm = page.getByRole('dialog', { name: 'Revoke to revoke?' });
  await confirm.getByText('This cannot be undone.').waitFor();
  await confirm.getByLabel(/Reason/).fill('leaked in a log');
  await confirm.getByRole('button', { name: 'Revoke key' }).click();
  const sudo = page.getByRole('dialog', { name: 'Confirm your password' });
  await sudo.waitFor();
  t.same(await axeViolations(page), [], 'sudo dialog: axe');
  await sudo.getByLabel('Password').fill('wrong password here');
  await sudo.getByRole('button', { name: 'Confirm' }).click();
  await sudo.getByText('That password is not right.').waitFor();
  await sudo.getByLabel('Password').fill(USERS.admin.password);
  await sudo.getByRole('button', { name: 'Confirm' }).click();
  await page.getByText(/Revoked .*: leaked in a log/).waitFor();
  t.equal((await stack.adminCall('GET', `/v1/keys/${id}`)).body.status, 'revoked');
  t.equal(await page.getByRole('button', { name: 'Revoke' }).count(), 0, 'no more actions on a revoked key');

  await page.goto(`${stack.adminUrl}/dashboard/keys`);
  const row = page.locator(`tr[data-key-id="${id}"]`);
  await row.waitFor();
  t.match(await row.getAttribute('class'), /revoked/, 'still listed, marked revoked');
  t.equal(await row.locator('.badge.status-revoked').textContent(), 'revoked');

  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Actor').fill('ada');
  const entry = page.locator('tr', { hasText: 'key.revoked' }).filter({ hasText: id });
  await entry.waitFor();
  t.match(await entry.textContent(), /ada/, 'the audit log names the signed-in user');
  t.same(await axeViolations(page), [], 'audit log: axe');
});

t.test('nothing was fetched from another origin, and the CSP was never violated', async (t) => {
  t.same(offOrigin, []);
  t.same(cspErrors, []);
});
