import t from 'tap';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';

// Alerts in the dashboard (docs/alerts.md): the overview lists the last week's, a key's page
// shows its open ones as banners ("Expires in 6 days"), each tenant sees its own, in Chromium.

const stack = await startDashboardStack();
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
const DAY = 86_400_000;
const expiring = await stack.createKey({ name: 'nightly export', expires_at: new Date(stack.clock.now() + 6 * DAY - 3_600_000).toISOString() });
const gone = await stack.createKey({ name: 'old partner key' });
await stack.adminCall('POST', `/v1/keys/${gone.id}/revoke`, { reason: 'contract ended' });
// A second later, so that the two alerts have an order (newest first; ties go by id).
stack.clock.advance(1000);
await stack.admin.alerts.watch.tick();

t.test('the overview lists recent alerts; the key page shows its open alert as a banner', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  const card = page.locator('.card', { has: page.getByRole('heading', { name: 'Alerts' }) });
  await card.locator('li').nth(1).waitFor();
  const items = await card.locator('li').allTextContents();
  t.match(items[0], /^nightly export: Expires in 6 days/, 'newest first');
  t.match(items[1], /^old partner key: Revoked \(contract ended\)/);
  t.same(await axeViolations(page), [], 'overview with alerts: axe');

  await card.getByRole('link', { name: 'nightly export' }).click();
  const banner = page.getByRole('status', { name: 'Alerts about this key' });
  await banner.waitFor();
  t.match(await banner.textContent(), /Expires in 6 days/);
  t.same(await axeViolations(page), [], 'key page with its banner: axe');

  await page.goto(`${stack.adminUrl}/dashboard/keys/${gone.id}`);
  await page.getByRole('heading', { name: /old partner key/ }).waitFor();
  t.equal(await page.getByRole('status', { name: 'Alerts about this key' }).count(), 0, 'a revocation is history, not an open alert');
  await page.close();
});

t.test("a tenant's user sees its tenant's alerts only", async (t) => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.tenantA);
  const card = page.locator('.card', { has: page.getByRole('heading', { name: 'Alerts' }) });
  await card.getByText('No alerts in the last 7 days.').waitFor();
  t.notMatch(await card.textContent(), /nightly export|old partner key/);
  await page.close();
});
