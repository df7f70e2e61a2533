import t from 'tap';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';
import { bearer, call } from './lib/stack.js';

// The overview's rate-limit card and the usage page's custom range, error breakdown, recent
// errors with their CSV export and rate-limit use, in a real Chromium against a real gateway
// and admin plane; the traffic is sent through the gateway first.

const stack = await startDashboardStack();
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
// Created first, so that the overview's card (most recent key first) shows `busy` by default.
const tiny = await stack.createKey({ name: 'tiny plan key', plan: 'tiny' });
stack.clock.advance(1000);
const busy = await stack.createKey({ name: 'busy key', rate_limit: { limit: 10, window_seconds: 60, burst: 20 } });
const statuses: number[] = [];
for (let i = 0; i < 3; i++) statuses.push((await call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(busy.key) })).status);
// The tiny plan allows 2 a minute: the last two are refused with 429.
for (let i = 0; i < 4; i++) statuses.push((await call(`${stack.gw['production']}/v1/contacts/x`, { headers: bearer(tiny.key) })).status);

t.test('the traffic: three requests with one key, four with a key of the tiny plan, two of them refused', async (t) => {
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429]);
});

t.test("the overview's rate-limit card: plan, limit, burst, use as a bar, and when it resets", async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  const card = page.locator('.card', { has: page.getByRole('heading', { name: 'Rate limit' }) });
  await card.getByTestId('rate-limit-use').filter({ hasText: '3 / 10 (30%)' }).waitFor();
  const text = (await card.textContent())!;
  t.match(text, 'its own limit');
  t.match(text, '10 per minute');
  t.match(text, 'up to 20 at once', 'the burst');
  t.match(text, /resets in \d+ s/);
  t.equal(await card.getByRole('progressbar', { name: 'Rate-limit use of busy key' }).getAttribute('value'), '3');
  await card.getByRole('combobox').selectOption({ label: 'tiny plan key' });
  await card.getByTestId('rate-limit-use').filter({ hasText: '4 / 2 (200%)' }).waitFor();
  t.match(await card.textContent(), /Plantiny/, 'the plan by name');
  t.same(await axeViolations(page), [], 'overview with the card: axe');
  await page.close();
});

t.test('the usage page: errors by status, recent errors and their CSV, rate-limit use with its lines, a custom range', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Usage' }).click();
  await page.getByTestId('total-requests').filter({ hasText: '7' }).waitFor();
  const breakdown = page.getByTestId('errors-by-status');
  t.match(await breakdown.textContent(), /429 Too Many Requests2100\.0%/, 'the refusals by status, with their share');
  const recent = page.getByTestId('recent-errors');
  t.equal(await recent.locator('tbody tr').count(), 2, 'both refusals listed');
  t.match(await recent.locator('tbody tr').first().textContent(), /429.*rate_limit_exceeded/);

  const href = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
  t.match(href, /^\/v1\/usage\/errors\?range=24h&format=csv/);
  const csv = await page.evaluate(async (h) => {
    const r = await fetch(h!, { credentials: 'same-origin' });
    return { type: r.headers.get('content-type'), text: await r.text() };
  }, href);
  t.equal(csv.type, 'text/csv; charset=utf-8');
  const lines = csv.text.trim().split('\r\n');
  t.equal(lines[0], 'occurred_at,request_id,key_id,api,method,route,status,error,reason,message');
  t.equal(lines.length, 3, 'a header and the two refusals');
  t.match(lines[1], `,${tiny.id},`);

  const use = page.locator('.card', { has: page.getByRole('heading', { name: 'Rate-limit use' }) });
  await use.getByRole('combobox').selectOption(tiny.id);
  await use.getByTestId('rate-limit-exceeded').filter({ hasText: 'exceeded 2 times' }).waitFor();
  t.match(await use.textContent(), 'limit 2 per minute');
  t.equal(await use.locator('line.line80').count(), 1, 'the 80% line');
  t.equal(await use.locator('line.line95').count(), 1, 'the 95% line');
  t.ok((await use.locator('rect.err').count()) >= 1, 'a minute over 95% is drawn red');
  t.match(await use.getByRole('img').getAttribute('aria-label'), 'peak 200% of the limit');
  t.same(await axeViolations(page), [], 'usage: axe');

  await page.getByLabel('Time range').selectOption('custom');
  const now = Date.UTC(2026, 5, 1, 12);
  await page.getByLabel('From (UTC)').fill(new Date(now - 3_600_000).toISOString().slice(0, 16));
  await page.getByLabel('To (UTC)').fill(new Date(now + 3_600_000).toISOString().slice(0, 16));
  await page.getByTestId('total-requests').filter({ hasText: '7' }).waitFor();
  await page.getByLabel('From (UTC)').fill(new Date(now + 60_000).toISOString().slice(0, 16));
  await page.getByTestId('total-requests').filter({ hasText: /^0$/ }).waitFor();
  t.pass('a custom range after the traffic counts none of it');
  await page.getByLabel('From (UTC)').fill(new Date(now + 7_200_000).toISOString().slice(0, 16));
  await page.getByText('The range must start before it ends.').waitFor();
  t.same(await axeViolations(page), [], 'custom range: axe');
  await page.close();
});

t.test('a viewer at 390×844 sees the card and the usage page, with no write action', async (t) => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.viewer);
  await page.getByTestId('rate-limit-use').waitFor();
  t.same(await axeViolations(page), [], 'overview at 390×844: axe');
  await page.goto(`${stack.adminUrl}/dashboard/usage`);
  await page.getByTestId('recent-errors').waitFor();
  for (const name of [/create/i, /suspend/i, /revoke/i, /regenerate/i]) t.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
  t.same(await axeViolations(page), [], 'usage at 390×844: axe');
  const overflow = await page.evaluate(() => {
    const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1);
    return { by: document.documentElement.scrollWidth - document.documentElement.clientWidth, what: wide.slice(0, 5).map((e) => `${e.tagName}.${e.className}`) };
  });
  t.same(overflow, { by: 0, what: [] }, 'nothing wider than the phone');
  await page.close();
});
