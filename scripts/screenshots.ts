// Regenerates docs/screenshots/*.png (npm run screenshots): a Keygate stack on loopback with a
// few keys and some traffic, the dashboard in Debian's Chromium at 1280×800, and the keys page
// at a phone's 390×844. The clock is a manual one: from run to run only the code and the random
// key ids and keys change the pictures.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, signInPage, startDashboardStack, USERS } from '../test/lib/dashboard.js';
import { bearer, call, TENANT_A_TOKEN } from '../test/lib/stack.js';

const out = join(fileURLToPath(new URL('..', import.meta.url)), 'docs', 'screenshots');
mkdirSync(out, { recursive: true });

// The test stack's APIs, with route rules worth documenting and CORS open, so that Try it on
// the API docs page can send its request from the dashboard's origin.
const stack = await startDashboardStack({}, {
  overrides: (up) => ({
    // Countries on the key page: the gateway reads them from this header (a CDN sets it).
    usage: { flush_interval_ms: 50, country_header: 'cf-ipcountry' },
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream: up,
        unlisted: 'deny',
        routes: [
          { method: 'POST', path: '/v1/emails/send', scopes: ['send_email'] },
          { method: 'GET', path: '/v1/emails/:id', scopes: ['read_campaigns'] },
          { method: 'GET', path: '/v1/emails/limited', scopes: [], rate_limit: { limit: 1, window_seconds: 60 } },
        ],
        cors: { origins: ['*'] },
      },
      {
        name: 'contacts',
        path_prefix: '/v1/contacts',
        upstream: up,
        unlisted: { scopes: ['read_contacts'] },
        routes: [{ method: 'GET', path: '/v1/contacts/list', scopes: ['read_contacts'] }],
      },
      { name: 'dead', path_prefix: '/v1/dead', upstream: 'http://127.0.0.1:1', unlisted: 'allow' },
    ],
    policies: {
      partner: { description: 'Keys handed to partners', plan: 'tiny', expires_in_seconds: 90 * 86_400, ip_allowlist: ['203.0.113.0/24'], regeneration_grace_seconds: 3600 },
      internal: { description: 'Services of our own', rate_limit: { limit: 50, window_seconds: 60, burst: 80 }, allow_regeneration: false },
    },
  }),
});
try {
  const apps = {
    // A shared monthly quota that its key's traffic below spends from: the list's balance and the application's page.
    shop: (
      await stack.adminCall('POST', '/v1/applications', {
        name: 'Web shop',
        description: 'Checkout and order emails',
        rate_limit: { limit: 1000, window_seconds: 60, burst: null },
        quota: { limit: 500, period: 'month' },
      })
    ).body.id as string,
    portal: (await stack.adminCall('POST', '/v1/applications', { name: 'Partner portal', description: 'Syncs campaigns for resellers' })).body.id as string,
    reports: (await stack.adminCall('POST', '/v1/applications', { name: 'Reporting' })).body.id as string,
  };
  // A minute apart, so that the lists' order (newest first) is the same on every run.
  const created = <T>(make: () => Promise<T>): Promise<T> => {
    stack.clock.advance(60_000);
    return make();
  };
  const keys = {
    // A monthly quota that the day of traffic below spends from: the key page's Quota card and the list's balance.
    web: await created(() => stack.createKey({ name: 'Web checkout', scopes: ['send_email', 'read_contacts'], application: apps.shop, quota: { limit: 10_000, period: 'month' } })),
    // Expires in about six days once the day of traffic below has passed: an alert on the overview.
    ci: await created(() => stack.createKey({ name: 'CI pipeline', environment: 'test', scopes: ['read_campaigns'], expires_at: new Date(stack.clock.now() + 7 * 86_400_000 - 3_600_000).toISOString() })),
    // Credits in shadow mode, nearly spent: the list marks it shadow and low.
    mobile: await created(() => stack.createKey({ name: 'Mobile app', scopes: ['read_only'], credits: { remaining: 40, refill: { amount: 40, every: 'month' }, mode: 'shadow' } }, TENANT_A_TOKEN)),
    partner: await created(() => stack.createKey({ name: 'Partner sync', scopes: ['write_campaigns', 'read_campaigns'], ip_allowlist: ['203.0.113.0/24'], application: apps.portal })),
    old: await created(() => stack.createKey({ name: 'Legacy integration', scopes: ['send_email'] })),
    trial: await created(() => stack.createKey({ name: 'Trial account', plan: 'tiny', scopes: ['read_contacts'] })),
  };
  await stack.adminCall('POST', `/v1/keys/${keys.partner.id}/suspend`, { reason: 'contract paused' });
  await stack.adminCall('POST', `/v1/applications/${apps.portal}/suspend`, { reason: 'contract paused' });
  await stack.adminCall('POST', `/v1/keys/${keys.old.id}/revoke`, { reason: 'replaced by Web checkout' });

  // Traffic over the last day: mostly fine, some refused, some failing upstream.
  for (let hour = 0; hour < 12; hour++) {
    const n = 3 + ((hour * 7) % 9);
    for (let i = 0; i < n; i++) {
      const country = ['DE', 'US', 'US', 'FR', 'BR'][(hour + i) % 5]!;
      await call(`${stack.gw['production']}/v1/emails/send`, { method: 'POST', headers: { ...bearer(keys.web.key), 'cf-ipcountry': country }, body: '{}' });
    }
    for (let i = 0; i < n / 3; i++) await call(`${stack.gw['production']}/v1/contacts/list`, { headers: bearer(keys.mobile.key) });
    if (hour % 4 === 1) await call(`${stack.gw['production']}/v1/dead/x`, { headers: bearer(keys.web.key) });
    if (hour % 3 === 2) await call(`${stack.gw['production']}/v1/emails/send`, { method: 'POST', headers: bearer(keys.mobile.key), body: '{}' });
    await call(`${stack.gw['test']}/v1/contacts/all`, { headers: bearer(keys.ci.key) });
    stack.clock.advance(2 * 3600_000 - 7 * 60_000);
  }
  // A trial key over its plan of 2 a minute: two of its five requests are refused.
  for (let i = 0; i < 5; i++) await call(`${stack.gw['production']}/v1/contacts/list`, { headers: bearer(keys.trial.key) });
  stack.clock.advance(60_000);
  for (let i = 0; i < 2; i++) await call(`${stack.gw['production']}/v1/contacts/list`, { headers: bearer(keys.trial.key) });
  for (;;) {
    const u = await stack.adminCall('GET', '/v1/usage?range=24h');
    if (u.body.totals.requests >= 97) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stack.admin.alerts.watch.tick();

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(15_000);
    const shot = (name: string) => page.screenshot({ path: join(out, `${name}.png`) });

    await page.goto(`${stack.adminUrl}/dashboard`);
    await page.getByLabel('Email').waitFor();
    await shot('sign-in');
    await signInPage(page, stack.adminUrl, USERS.admin);
    await page.getByRole('link', { name: 'Trial account' }).waitFor();
    await page.getByTestId('rate-limit-use').waitFor();
    await shot('overview');

    await page.goto(`${stack.adminUrl}/dashboard/keys`);
    await page.getByRole('link', { name: 'Legacy integration' }).waitFor();
    await page.getByTestId('balance-indicator').nth(1).waitFor();
    await shot('keys');

    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('Billing service');
    await dialog.getByLabel('Description').fill('Sends invoices by email');
    await dialog.getByRole('button', { name: 'Next' }).click();
    await dialog.getByLabel('send_email').check();
    await dialog.getByLabel('read_contacts').check();
    await shot('create-permissions');
    await dialog.getByRole('button', { name: 'Next' }).click();
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await dialog.getByTestId('new-key').waitFor();
    await shot('create-success');
    await dialog.getByRole('button', { name: "I've saved my key" }).click();

    await page.goto(`${stack.adminUrl}/dashboard/keys/${keys.web.id}`);
    await page.getByRole('heading', { name: 'Timeline' }).waitFor();
    await page.getByTestId('key-requests').waitFor();
    await page.getByTestId('key-countries').waitFor();
    await page.getByTestId('key-balance').filter({ hasText: 'left this month' }).waitFor();
    // The whole page: the usage section is below the fold at 1280×800.
    await page.screenshot({ path: join(out, 'key-detail.png'), fullPage: true });
    await page.getByRole('button', { name: 'Edit permissions' }).click();
    await page.getByRole('dialog').getByLabel('read_contacts').uncheck();
    await page.getByRole('dialog').getByText('will be refused from the next request').waitFor();
    await shot('key-edit-permissions');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Edit rate limit' }).click();
    await page.getByRole('dialog').getByLabel('Its own limit').check();
    await page.getByRole('dialog').getByLabel('Requests').fill('600');
    await page.getByRole('dialog').getByLabel('Burst (optional)').fill('100');
    await shot('key-edit-rate-limit');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Top up or set balance' }).click();
    await page.getByRole('dialog').getByLabel('Units').fill('5000');
    await page.getByRole('dialog').getByText('The balance goes from').waitFor();
    await shot('key-top-up');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Edit quota' }).click();
    await page.getByRole('dialog').getByLabel('Shadow mode: count and report, never refuse').check();
    await page.getByRole('dialog').getByText('In shadow mode nothing is refused').waitFor();
    await shot('key-edit-quota');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByText('cannot be undone').waitFor();
    await shot('key-revoke-confirm');

    await page.goto(`${stack.adminUrl}/dashboard/keys/${keys.old.id}`);
    await page.getByText('Requests with this key are refused.').waitFor();
    await shot('key-revoked');

    await page.goto(`${stack.adminUrl}/dashboard/usage`);
    await page.getByTestId('total-requests').waitFor();
    const use = page.locator('.card', { has: page.getByRole('heading', { name: 'Rate-limit use' }) });
    await use.getByRole('combobox').selectOption(keys.trial.id);
    await use.getByText('exceeded 3 times').waitFor();
    await page.getByTestId('recent-errors').waitFor();
    // The whole page: errors and rate-limit use are below the fold at 1280×800.
    await page.screenshot({ path: join(out, 'usage.png'), fullPage: true });

    await page.goto(`${stack.adminUrl}/dashboard/apis`);
    const send = page.locator('details', { hasText: '/v1/emails/send' });
    await send.locator('summary').click();
    await page.getByLabel('Key for Try it').fill(keys.web.key);
    await send.getByRole('button', { name: 'Send request' }).click();
    await send.getByRole('status').waitFor();
    // The whole page: the answer of Try it is below the fold at 1280×800.
    await page.screenshot({ path: join(out, 'api-docs.png'), fullPage: true });

    await page.goto(`${stack.adminUrl}/dashboard/applications`);
    await page.getByText('Partner portal').waitFor();
    await page.getByTestId('balance-indicator').waitFor();
    await shot('applications');
    await page.goto(`${stack.adminUrl}/dashboard/applications/${apps.shop}`);
    await page.getByTestId('app-balance').waitFor();
    await shot('application');
    await page.getByRole('button', { name: 'Top up or set balance' }).click();
    await page.getByRole('dialog').getByLabel('Units').fill('250');
    await page.getByRole('dialog').getByText('The balance goes from').waitFor();
    await shot('application-top-up');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.goto(`${stack.adminUrl}/dashboard/applications`);
    await page.getByTestId('balance-indicator').waitFor();
    await page.getByRole('button', { name: 'Suspend Web shop' }).click();
    await page.getByRole('dialog').getByText('1 key it owns').waitFor();
    await shot('application-suspend-confirm');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

    await page.goto(`${stack.adminUrl}/dashboard/policies`);
    await page.getByRole('heading', { name: 'partner' }).waitFor();
    await shot('policies');

    await page.goto(`${stack.adminUrl}/dashboard/audit`);
    await page.getByRole('cell', { name: 'key.revoked' }).waitFor();
    await shot('audit');

    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await signInPage(phone, stack.adminUrl, USERS.admin);
    await phone.goto(`${stack.adminUrl}/dashboard/keys`);
    await phone.getByRole('link', { name: 'Legacy integration' }).waitFor();
    await phone.getByTestId('balance-indicator').nth(1).waitFor();
    await phone.screenshot({ path: join(out, 'keys-phone.png') });
  } finally {
    await browser.close();
  }
} finally {
  await stack.close();
}
console.log(`screenshots written to ${out}`);
