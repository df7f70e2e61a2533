import t from 'tap';
import { launchChromium, signInPage, startDashboardStack, USERS } from './lib/dashboard.js';

// Paging through a list in Chromium: 45 keys at 20 a page are three pages; Next and Previous
// walk them with the API's forward-only cursors, and a filter goes back to the first page.

const stack = await startDashboardStack();
const browser = await launchChromium();
t.teardown(async () => {
  await browser.close();
  await stack.close();
});
for (let i = 0; i < 45; i++) {
  await stack.createKey({ name: `paged key ${String(i).padStart(2, '0')}` });
  stack.clock.advance(1000);
}

t.test('Next and Previous walk the keys a page at a time; a filter starts again at page 1', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15_000);
  await signInPage(page, stack.adminUrl, USERS.admin);
  await page.goto(`${stack.adminUrl}/dashboard/keys`);
  const pager = page.getByRole('navigation', { name: 'Pages of keys' });
  const names = () => page.locator('table tbody tr td:first-child a').allTextContents();
  await page.getByRole('link', { name: 'paged key 44' }).waitFor();
  t.equal((await names()).length, 20);
  t.ok(await pager.getByRole('button', { name: 'Previous' }).isDisabled(), 'no page before the first');

  await pager.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('link', { name: 'paged key 24' }).waitFor();
  t.match(await pager.textContent(), /Page 2/);
  t.same((await names()).slice(0, 2), ['paged key 24', 'paged key 23']);
  await pager.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('link', { name: 'paged key 04' }).waitFor();
  t.equal((await names()).length, 5, 'the last page holds the rest');
  t.ok(await pager.getByRole('button', { name: 'Next' }).isDisabled(), 'no page after the last');

  await pager.getByRole('button', { name: 'Previous' }).click();
  await page.getByRole('link', { name: 'paged key 24' }).waitFor();
  t.match(await pager.textContent(), /Page 2/);
  await page.getByRole('searchbox').first().fill('paged key 1');
  // Key 19 is on page 2 too: wait for the filtered list itself, which has no key 24.
  await page.getByRole('link', { name: 'paged key 24' }).waitFor({ state: 'detached' });
  await page.getByRole('link', { name: 'paged key 19' }).waitFor();
  t.match(await pager.textContent(), /Page 1/, 'a filter goes back to the first page');
  t.equal((await names()).length, 10);
  await page.close();
});
