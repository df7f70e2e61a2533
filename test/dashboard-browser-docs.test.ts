import t from 'tap';
import { axeViolations, launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';

// The API docs page in a real Chromium against a real gateway and admin plane: the routes of the
// configuration with their scopes and limits, examples in three languages, and Try it, which
// sends a pasted key to the gateway (whose CORS rules decide) and never to the admin plane.

const stack = await startDashboardStack({}, {
  overrides: (up) => ({
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream: up,
        routes: [
          { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
          { method: 'GET', path: '/v1/emails/:id', scopes: ['read_campaigns'], rate_limit: { limit: 10, window_seconds: 60 } },
        ],
        cors: { origins: ['*'] },
      },
      { name: 'contacts', path_prefix: '/v1/contacts', upstream: up, routes: [{ method: 'GET', path: '/v1/contacts/list' }] },
    ],
  }),
});
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
const issued = await stack.createKey({ name: 'docs key', scopes: ['send_email', 'read_campaigns'] });

t.test('an admin reads the routes with their scopes, limits and examples, and tries one through the gateway', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  // Everything the page sends to the admin plane, to show that the pasted key never goes there.
  const toAdmin: string[] = [];
  page.on('request', (r) => {
    if (r.url().startsWith(stack.adminUrl)) toAdmin.push(`${r.url()} ${JSON.stringify(r.headers())} ${r.postData() ?? ''}`);
  });
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'API docs' }).click();
  await page.getByRole('heading', { name: 'API docs', level: 1 }).waitFor();
  await page.getByRole('heading', { name: /emails/ }).waitFor();
  t.ok(await page.getByRole('heading', { name: /contacts/ }).isVisible(), 'every API of the configuration');
  t.match(await page.getByRole('row', { name: /tiny/ }).textContent(), '2 per minute', 'the plans with their limits');
  t.same(await axeViolations(page), [], 'API docs: axe');

  const send = page.locator('details', { hasText: '/v1/emails/send' });
  await send.locator('summary').click();
  t.match(await send.locator('summary').textContent(), /POST.*\/v1\/emails\/send.*send_email/, 'method, path and scope');
  const example = send.locator('.secret code');
  const curl = await example.textContent();
  t.match(curl, `-X POST`);
  t.match(curl, `-H "Authorization: Bearer $KEYGATE_KEY"`);
  t.match(curl, `"${stack.gw['production']}/v1/emails/send"`, 'the gateway URL of the environment');
  await page.getByLabel('Examples in').selectOption('fetch');
  t.match(await example.textContent(), `await fetch("${stack.gw['production']}/v1/emails/send"`);
  await page.getByLabel('Examples in').selectOption('python');
  t.match(await example.textContent(), /import requests[\s\S]*requests\.request\(\s*"POST"/);
  await page.getByLabel('Environment').selectOption('test');
  t.match(await example.textContent(), stack.gw['test']!, 'another environment, another gateway');
  await page.getByLabel('Environment').selectOption('production');

  const limited = page.locator('details', { hasText: '/v1/emails/:id' });
  await limited.locator('summary').click();
  t.match(await limited.locator('summary').textContent(), '10 per minute', "the route's own rate limit");
  t.match(await limited.locator('.secret code').textContent(), '/v1/emails/ID', 'a parameter written as a placeholder');

  t.ok(await send.getByRole('button', { name: 'Send request' }).isDisabled(), 'no Try it without a key');
  await page.getByLabel('Key for Try it').fill(issued.key);
  await send.getByRole('button', { name: 'Send request' }).click();
  const answer = send.getByRole('status');
  await answer.waitFor();
  t.match(await answer.textContent(), /^200 OK/, "the gateway's answer");
  t.match(await answer.textContent(), /ratelimit/i, "the gateway's rate-limit headers, exposed to the page by CORS");
  const last = stack.upstream.seen[stack.upstream.seen.length - 1]!;
  t.equal(`${last.method} ${last.url}`, 'POST /v1/emails/send', 'the request went through the gateway to the upstream');
  t.same(await axeViolations(page), [], 'Try it with an answer: axe');

  await page.getByLabel('Key for Try it').fill('gw_live_notakey');
  await send.getByRole('button', { name: 'Send request' }).click();
  await answer.filter({ hasText: '401' }).waitFor();
  t.pass('a bad key gets the gateway’s 401, shown as it came');

  await page.getByLabel('Key for Try it').fill('gw_live_ä€');
  t.ok(await send.getByRole('button', { name: 'Send request' }).isDisabled(), 'a key that cannot be a header value is not sent');
  t.ok(await send.getByText('A key is one word of visible ASCII characters.').isVisible());
  await page.getByLabel('Key for Try it').fill(issued.key);
  const path = send.getByLabel('Path');
  await path.fill('//evil.example/steal');
  t.ok(await send.getByRole('button', { name: 'Send request' }).isDisabled(), 'a path that would leave the gateway cannot be sent');
  t.ok(await send.getByText('A path on the gateway').isVisible());
  await path.fill('/v1/emails/send');

  const contacts = page.locator('details', { hasText: '/v1/contacts/list' });
  await contacts.locator('summary').click();
  t.match(await contacts.locator('.warning').textContent(), 'does not list this page', 'an API without CORS for this origin is flagged');
  await contacts.getByRole('button', { name: 'Send request' }).click();
  t.match(await contacts.getByRole('alert').textContent(), /CORS rules do not list this page's origin/, 'and the browser refuses, as said');

  t.notOk(toAdmin.some((r) => r.includes(issued.key)), 'the pasted key was never sent to the admin plane');
  t.ok(toAdmin.some((r) => r.includes('/v1/apis')), '(the admin requests were watched)');
  await page.close();
});

t.test('a viewer reads the docs at 390×844, with no write action', async (t) => {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.viewer);
  await page.goto(`${stack.adminUrl}/dashboard/apis`);
  await page.getByRole('heading', { name: /emails/ }).waitFor();
  for (const name of [/create/i, /suspend/i, /revoke/i, /regenerate/i]) t.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
  await page.locator('details', { hasText: '/v1/emails/send' }).locator('summary').click();
  t.same(await axeViolations(page), [], 'API docs at 390×844: axe');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.equal(overflow, 0, 'nothing wider than the phone');
  await page.close();
});
