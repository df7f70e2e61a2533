import t from 'tap';
import type { Page } from 'playwright-core';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';
import { bearer, call } from './lib/stack.js';
import { within } from './lib/within.js';

// The key page's editors (permissions, rate limit, IP allowlist, expiry) and its usage section,
// in a real Chromium against a real gateway and admin plane on loopback: each edit is made
// through the page and its effect checked through the gateway.

const stack = await startDashboardStack({}, {
  overrides: () => ({
    usage: { flush_interval_ms: 50, country_header: 'cf-ipcountry' },
    // The test stack's plans, and one with a quota: a key of it spends its plan's.
    plans: { default: { limit: 100, window_seconds: 60 }, tiny: { limit: 2, window_seconds: 60 }, metered: { limit: 100, window_seconds: 60, quota: { limit: 5, period: 'day' } } },
  }),
});
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
const key = await stack.createKey({ name: 'edit me', scopes: ['send_email', 'read_contacts'] });
const quiet = await stack.createKey({ name: 'quiet key' });
const metered = await stack.createKey({ name: 'metered' });
const planned = await stack.createKey({ name: 'on a metered plan', plan: 'metered' });
const gw = stack.gw['production']!;
const send = () => call(`${gw}/v1/emails/send`, { method: 'POST', headers: { ...bearer(key.key), 'cf-ipcountry': 'DE' }, body: '{}' });
// The contacts API lets any path through with no scope: for the checks of limits, addresses and expiry.
const contacts = () => call(`${gw}/v1/contacts/x`, { headers: bearer(key.key) });

const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
page.setDefaultTimeout(15_000);
const keyPath = `${stack.adminUrl}/dashboard/keys/${key.id}`;

async function recorded(id: string, n: number): Promise<void> {
  await within(
    (async () => {
      while ((await stack.adminCall('GET', `/v1/keys/${id}/usage?range=24h`)).body.totals.requests < n) await new Promise((r) => setTimeout(r, 20));
    })(),
    10_000,
    `${n} request(s) recorded`,
  );
}

/** Opens an editor by its Edit button; the dialog it opens. */
async function openEditor(p: Page, what: string) {
  await p.getByRole('button', { name: `Edit ${what}` }).click();
  const dialog = p.getByRole('dialog', { name: `Edit the ${what} of edit me` });
  await dialog.waitFor();
  return dialog;
}

async function save(p: Page, what: string) {
  const dialog = p.getByRole('dialog', { name: `Edit the ${what} of edit me` });
  await dialog.getByRole('button', { name: `Save ${what}` }).click();
  await dialog.waitFor({ state: 'detached' });
  await p.getByRole('status').filter({ hasText: `The ${what} of this key changed` }).waitFor();
}

t.test('usage on the key page: per hour for 24 h, per day for 7 d, with the request counted, its endpoint, status and country', async (t) => {
  t.equal((await send()).status, 200, 'the key sends an email before any edit');
  await recorded(key.id, 1);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.goto(keyPath);
  const usage = page.locator('section', { has: page.getByRole('heading', { name: 'Usage', exact: true }) });
  await usage.getByTestId('key-requests').filter({ hasText: /^1$/ }).waitFor();
  const volume = usage.getByRole('img', { name: /^Request volume per hour: 1 requests, 0 errors/ });
  t.ok(await volume.isVisible(), 'the chart names the request');
  // The stack's clock stands at 2026-06-01 12:00 UTC: the request is in the 12:00 hour.
  t.equal(await volume.locator('g title', { hasText: ': 1 requests' }).textContent(), '2026-06-01 12:00 UTC: 1 requests, 0 errors', 'counted in its hour');
  t.ok((await volume.locator('g').count()) <= 25, 'a day of minutes drawn by the hour');
  t.match(await usage.getByRole('img', { name: /^Error rate per hour/ }).getAttribute('aria-label'), '0.0% overall');

  await usage.getByRole('button', { name: '7 days' }).click();
  await usage.getByRole('heading', { name: 'Requests per day' }).waitFor();
  t.equal(await usage.getByRole('button', { name: '7 days' }).getAttribute('aria-pressed'), 'true');
  const week = usage.getByRole('img', { name: /^Request volume per day: 1 requests/ });
  await week.waitFor();
  const days = await week.locator('g title').allTextContents();
  t.equal(days.length, 7, 'seven bars, one a day');
  t.equal(days[6], '2026-06-01 00:00 UTC: 1 requests, 0 errors', 'the request in the last day');
  t.same(days.slice(0, 6).map((d) => d.endsWith(': 0 requests, 0 errors')), [true, true, true, true, true, true], 'none in the six before');
  t.match(await usage.getByRole('img', { name: /^Error rate per day/ }).getAttribute('aria-label'), 'in 1 days with requests');
  const endpoint = usage.locator('table tr', { hasText: 'POST /v1/emails/send' });
  t.match(await endpoint.textContent(), /POST \/v1\/emails\/send1100\.0%\d+ ms/, 'the endpoint with its success rate and latency');
  t.match(await usage.getByTestId('key-status-codes').textContent(), /200 OK1100\.0%/);
  t.match(await usage.getByTestId('key-countries').textContent(), /Germany \(DE\)1100\.0%/, 'the country the request came with');
  t.same(await axeViolations(page), [], 'key page with its usage: axe');
});

t.test('permissions: narrowing the scopes says what will be refused, and the gateway refuses it', async (t) => {
  await page.goto(keyPath);
  const dialog = await openEditor(page, 'permissions');
  t.ok(await dialog.getByLabel('send_email').isChecked(), 'the current scopes are checked');
  await dialog.getByLabel('send_email').uncheck();
  await dialog.getByText('Requests needing send_email will be refused from the next request.').waitFor();
  await dialog.getByRole('button', { name: '+ read_only' }).click();
  t.ok(await dialog.getByLabel('read_campaigns').isChecked(), 'a preset adds its scopes');
  await dialog.getByText('Requests needing read_campaigns will be allowed from the next request.').waitFor();
  t.same(await axeViolations(page), [], 'permissions editor open: axe');
  await save(page, 'permissions');

  await page.getByTestId('key-scopes').filter({ hasText: /^read_contactsread_campaigns$/ }).waitFor();
  t.pass('the page shows the new scopes');
  await page.locator('ol.timeline li', { hasText: 'edited scopes' }).waitFor();
  t.pass('the timeline shows the edit');
  t.same((await stack.adminCall('GET', `/v1/keys/${key.id}`)).body.scopes.sort(), ['read_campaigns', 'read_contacts']);
  const refused = await send();
  t.equal(refused.status, 403, 'a request needing send_email is refused');
  t.equal(refused.body.error, 'insufficient_permissions');
});

t.test('IP allowlist: checked as typed, the API refusal shown, an allowlist without 127.0.0.1 refuses, empty allows any', async (t) => {
  await page.goto(keyPath);
  let dialog = await openEditor(page, 'IP allowlist');
  const input = dialog.getByLabel(/Allowed IP addresses/);
  await input.fill('10.0.0.0/8, nonsense');
  await dialog.getByText('"nonsense" is not an IP address or CIDR').waitFor();
  t.ok(await dialog.getByRole('button', { name: 'Save IP allowlist' }).isDisabled(), 'flagged as typed');
  // The right shape, but no address: the page lets it through and shows what the API says.
  await input.fill('999.0.0.1');
  await dialog.getByRole('button', { name: 'Save IP allowlist' }).click();
  await dialog.getByRole('alert').filter({ hasText: 'must be an IPv4 or IPv6 address or CIDR' }).waitFor();
  t.pass("the API's refusal is shown in the editor");
  await input.fill('203.0.113.0/24');
  await dialog.getByText('Requests from any other address will be refused from the next request.').waitFor();
  t.same(await axeViolations(page), [], 'allowlist editor open, with an error: axe');
  await save(page, 'IP allowlist');
  await page.getByTestId('key-allowlist').filter({ hasText: /^203\.0\.113\.0\/24$/ }).waitFor();
  const refused = await contacts();
  t.equal(refused.status, 403, 'a request from 127.0.0.1 is refused');
  t.equal(refused.body.error, 'ip_not_allowed');

  dialog = await openEditor(page, 'IP allowlist');
  t.equal(await dialog.getByLabel(/Allowed IP addresses/).inputValue(), '203.0.113.0/24', 'the editor starts from the current list');
  await dialog.getByLabel(/Allowed IP addresses/).fill('');
  await dialog.getByText('Requests from any address will be accepted from the next request.').waitFor();
  await save(page, 'IP allowlist');
  await page.getByTestId('key-allowlist').filter({ hasText: /^any address$/ }).waitFor();
  t.equal((await stack.adminCall('GET', `/v1/keys/${key.id}`)).body.ip_allowlist, null, 'empty is any address (null)');
  t.equal((await contacts()).status, 200, 'requests from 127.0.0.1 work again');
});

t.test("rate limit: the key's own limit, then a plan, each seen in the gateway's RateLimit-Policy", async (t) => {
  await page.goto(keyPath);
  t.equal(await page.getByTestId('key-rate-limit').textContent(), 'plan default');
  const dialog = await openEditor(page, 'rate limit');
  await dialog.getByLabel('Its own limit').check();
  await dialog.getByLabel('Requests').fill('seven');
  await dialog.getByText('The number of requests must be a whole number of at least 1.').waitFor();
  t.ok(await dialog.getByRole('button', { name: 'Save rate limit' }).isDisabled(), 'flagged as typed');
  await dialog.getByLabel('Requests').fill('7');
  await dialog.getByLabel('Per (seconds)').fill('60');
  await dialog.getByLabel('Burst (optional)').fill('9');
  await dialog.getByText('limited to 7 requests per 60 s from the next request').waitFor();
  t.same(await axeViolations(page), [], 'rate-limit editor open: axe');
  await save(page, 'rate limit');
  await page.getByTestId('key-rate-limit').filter({ hasText: '7 per 60 s, burst 9' }).waitFor();
  const own = await contacts();
  t.match(own.headers['ratelimit-policy'], /;q=7;w=60/, "the gateway's RateLimit-Policy shows the key's own limit");

  const again = await openEditor(page, 'rate limit');
  await again.getByLabel('Use a plan').check();
  await again.getByRole('combobox', { name: 'Plan' }).selectOption('tiny');
  await again.getByText('limited to 2 requests per 60 s, by the plan tiny').waitFor();
  await save(page, 'rate limit');
  await page.getByTestId('key-rate-limit').filter({ hasText: /^plan tiny$/ }).waitFor();
  const body = (await stack.adminCall('GET', `/v1/keys/${key.id}`)).body;
  t.same([body.plan, body.rate_limit], ['tiny', null], 'the plan set and the own limit gone');
  t.match((await contacts()).headers['ratelimit-policy'], /;q=2;w=60/, "now the plan's limit");
});

t.test('quota: set through the editor, shown as a balance, spent at the gateway, topped up and set; shadow mode marked and never refusing; the keys list shows it', async (t) => {
  const meteredPath = `${stack.adminUrl}/dashboard/keys/${metered.id}`;
  const spend = () => call(`${gw}/v1/contacts/x`, { headers: bearer(metered.key) });
  await page.goto(meteredPath);
  await page.getByTestId('key-balance').filter({ hasText: 'No quota: only the rate limit bounds this key.' }).waitFor();
  t.equal(await page.getByRole('button', { name: 'Top up or set balance' }).count(), 0, 'no balance to top up before there is a quota');

  await page.getByRole('button', { name: 'Edit quota' }).click();
  let dialog = page.getByRole('dialog', { name: 'Edit the quota of metered' });
  await dialog.getByLabel('Units per period').check();
  await dialog.getByLabel('Units', { exact: true }).fill('three');
  await dialog.getByText('The units must be a whole number from 1 to 1,000,000,000,000.').waitFor();
  t.ok(await dialog.getByRole('button', { name: 'Save quota' }).isDisabled(), 'flagged as typed');
  await dialog.getByLabel('Units', { exact: true }).fill('3');
  await dialog.getByRole('combobox', { name: 'Per' }).selectOption('hour');
  await dialog.getByText('From the next request the key may spend 3 units an hour. It starts with 3.').waitFor();
  await dialog.getByText('requests are refused with 429 quota_exceeded until the next refill').waitFor();
  t.same(await axeViolations(page), [], 'quota editor open: axe');
  await dialog.getByRole('button', { name: 'Save quota' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'The quota of this key changed' }).waitFor();
  await page.getByTestId('key-balance').filter({ hasText: /^3 of 3 left this hour$/ }).waitFor();
  t.equal(await page.getByTestId('key-quota').textContent(), '3 an hour');
  t.match(await page.getByTestId('key-quota-mode').textContent(), /^enforced/);
  t.match((await stack.adminCall('GET', `/v1/keys/${metered.id}`)).body.quota, { limit: 3, period: 'hour', refill: true, mode: 'enforce', refund_on: [] }, 'the PATCH sent the quota');

  const first = await spend();
  t.match(first.headers['ratelimit-policy'], /"quota";q=3;w=3600/, "the gateway reports the quota the page set");
  await spend();
  await spend();
  const refused = await spend();
  t.equal(refused.status, 429, 'the fourth request of the hour is refused');
  t.equal(refused.body.error, 'quota_exceeded');
  await page.goto(meteredPath);
  await page.getByTestId('key-balance').filter({ hasText: /^0 of 3 left this hour$/ }).waitFor();
  t.equal(await page.getByRole('progressbar', { name: 'Quota left of metered: 0 of 3' }).count(), 1, 'the bar has a name saying what is left');

  await page.getByRole('button', { name: 'Top up or set balance' }).click();
  dialog = page.getByRole('dialog', { name: 'Top up or set the balance of metered' });
  await dialog.getByLabel('Units').fill('2');
  await dialog.getByText('The balance goes from 0 to 2 at once, for every gateway.').waitFor();
  await dialog.getByText('sets it to 3 again, whatever was added').waitFor();
  t.same(await axeViolations(page), [], 'top-up dialog open: axe');
  await dialog.getByRole('button', { name: 'Add units' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'The balance of this key is now 2' }).waitFor();
  await page.getByTestId('key-balance').filter({ hasText: /^2 of 3 left this hour$/ }).waitFor();
  t.equal((await spend()).status, 200, 'the top-up lets a request through');
  await page.locator('ol.timeline li', { hasText: 'edited quota' }).waitFor();
  const audit = (await stack.adminCall('GET', `/v1/audit?key_id=${metered.id}&action=key.credits_changed`)).body.data;
  t.match(audit[0], { actor: 'ada', changes: { balance: { from: 0, to: 2 } } }, 'audited as the signed-in user');

  await page.getByRole('button', { name: 'Top up or set balance' }).click();
  dialog = page.getByRole('dialog', { name: 'Top up or set the balance of metered' });
  await dialog.getByLabel('Set the balance to').check();
  await dialog.getByLabel('Units').fill('0');
  await dialog.getByText('With nothing left, requests with this key are refused until the refill.').waitFor();
  await dialog.getByRole('button', { name: 'Set balance' }).click();
  await page.getByRole('status').filter({ hasText: 'The balance of this key is now 0' }).waitFor();
  t.equal((await spend()).status, 429, 'set to 0: refused');

  await page.getByRole('button', { name: 'Edit quota' }).click();
  dialog = page.getByRole('dialog', { name: 'Edit the quota of metered' });
  t.equal(await dialog.getByLabel('Units', { exact: true }).inputValue(), '3', 'the editor starts from the current quota');
  await dialog.getByLabel('Shadow mode: count and report, never refuse').check();
  await dialog.getByText('In shadow mode nothing is refused').waitFor();
  await dialog.getByText('The 0 left now stay until the next refill').waitFor();
  await dialog.getByRole('button', { name: 'Save quota' }).click();
  await page.getByRole('heading', { name: 'Quota' }).getByText('shadow mode').waitFor();
  t.match(await page.getByTestId('key-quota-mode').textContent(), /^shadow: counted and reported, never refused/);
  t.equal((await spend()).status, 200, 'in shadow mode the gateway lets it through with nothing left');

  await page.goto(`${stack.adminUrl}/dashboard/keys/${planned.id}`);
  await page.getByTestId('key-balance').filter({ hasText: /^5 left$/ }).waitFor();
  t.equal(await page.getByTestId('key-quota').textContent(), "its plan's (metered)", "a key with no quota of its own shows its plan's balance");
  t.equal(await page.getByRole('button', { name: 'Top up or set balance' }).count(), 1, "and may top it up (the API sets the plan's balance of this key)");

  await page.goto(`${stack.adminUrl}/dashboard/keys`);
  const row = page.locator(`tr[data-key-id="${metered.id}"]`);
  await row.getByTestId('balance-indicator').filter({ hasText: /^quota 0 of 3 left · shadow$/ }).waitFor();
  t.pass('the keys list shows the balance, marked shadow');
  t.equal(await page.locator(`tr[data-key-id="${quiet.id}"]`).getByTestId('balance-indicator').count(), 0, 'a key without a quota shows none');
  t.same(await axeViolations(page), [], 'keys list with a balance: axe');
});

t.test('expiry: 30 days, a date in the past refused as typed, a UTC date, and the gateway refuses the key after it', async (t) => {
  await page.goto(keyPath);
  let dialog = await openEditor(page, 'expiry');
  await dialog.getByText('Now: never expires').waitFor();
  await dialog.getByLabel('30 days').check();
  await save(page, 'expiry');
  await page.getByTestId('key-expires').filter({ hasText: /^in 30 days$/ }).waitFor();
  // The page reckons "30 days from now" on the server's clock (plus the real seconds since it read it).
  const in30 = Date.parse((await stack.adminCall('GET', `/v1/keys/${key.id}`)).body.expires_at) - stack.clock.now();
  t.ok(in30 >= 30 * 86_400_000 && in30 < 30 * 86_400_000 + 3_600_000, `expires 30 days after the server's now (${in30} ms)`);

  dialog = await openEditor(page, 'expiry');
  t.ok(await dialog.getByLabel('A date').isChecked(), 'a set expiry opens as a date');
  await dialog.getByLabel('Expires at (UTC)').fill('2026-05-01T00:00');
  await dialog.getByText('The date must be in the future.').waitFor();
  t.ok(await dialog.getByRole('button', { name: 'Save expiry' }).isDisabled(), 'a past date cannot be saved');
  await dialog.getByLabel('Expires at (UTC)').fill('2026-06-20T08:30');
  await dialog.getByText('From 20 Jun 2026, 08:30 UTC requests with this key will be refused.').waitFor();
  t.same(await axeViolations(page), [], 'expiry editor open: axe');
  await save(page, 'expiry');
  t.equal((await stack.adminCall('GET', `/v1/keys/${key.id}`)).body.expires_at, '2026-06-20T08:30:00.000Z', 'the date, read as UTC');
  await page.locator('ol.timeline li.scheduled', { hasText: 'expired' }).waitFor();
  t.pass('the timeline shows the expiry scheduled');

  stack.clock.advance(61_000);
  t.equal((await contacts()).status, 200, 'the key works before the date');
  stack.clock.set(Date.parse('2026-06-20T08:30:01Z'));
  const refused = await contacts();
  t.equal(refused.status, 401, 'and is refused after it');
  t.equal(refused.body.reason, 'expired');
  // Nineteen days on, the session has ended too: sign in again.
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.goto(keyPath);
  await page.getByRole('heading', { name: /edit me/ }).getByText('expired').waitFor();
  t.equal(await page.getByRole('button', { name: /^Edit/ }).count(), 0, 'an expired key offers no editor (the API would refuse)');
});

t.test('a viewer at 390×844 sees the settings, the quota and the usage with no edit control; an admin there edits in a dialog that fits', async (t) => {
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  phone.setDefaultTimeout(15_000);
  await signInPage(phone, stack.adminUrl, USERS.viewer);
  await phone.goto(`${stack.adminUrl}/dashboard/keys/${quiet.id}`);
  await phone.getByTestId('key-requests').filter({ hasText: /^0$/ }).waitFor();
  t.equal(await phone.getByRole('button', { name: /edit/i }).count(), 0, 'no edit control');
  for (const name of [/suspend/i, /revoke/i, /regenerate/i]) t.equal(await phone.getByRole('button', { name }).count(), 0, `no ${name} button`);
  await phone.getByText('usage.country_header').waitFor();
  t.pass('with no country recorded, the page says where countries come from');
  await phone.goto(`${stack.adminUrl}/dashboard/keys/${metered.id}`);
  // Nineteen days on, a new hour: the quota has refilled.
  await phone.getByTestId('key-balance').filter({ hasText: /^3 of 3 left this hour$/ }).waitFor();
  t.pass('a viewer sees the balance');
  for (const name of ['Edit quota', 'Top up or set balance']) t.equal(await phone.getByRole('button', { name }).count(), 0, `no ${name} button`);
  t.same(await axeViolations(phone), [], 'viewer at 390×844: axe');
  await phone.close();

  const admin = await browser.newPage({ viewport: { width: 390, height: 844 } });
  admin.setDefaultTimeout(15_000);
  await signInPage(admin, stack.adminUrl, USERS.admin);
  await admin.goto(`${stack.adminUrl}/dashboard/keys/${quiet.id}`);
  await admin.getByRole('button', { name: 'Edit rate limit' }).click();
  const dialog = admin.getByRole('dialog');
  await dialog.getByLabel('Its own limit').check();
  t.same(await axeViolations(admin), [], 'rate-limit editor at 390×844: axe');
  const overflow = await admin.evaluate(() => {
    const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1);
    return { by: document.documentElement.scrollWidth - document.documentElement.clientWidth, what: wide.slice(0, 5).map((e) => `${e.tagName}.${e.className}`) };
  });
  t.same(overflow, { by: 0, what: [] }, 'nothing wider than the phone');
  await admin.close();
});
