// Time to interactive of the dashboard's keys page with 10,000 keys, in headless Chromium, and
// the bytes each page loads (npm run bench:dashboard; docs/performance.md, "Dashboard").
//
// A Keygate stack on loopback (gateway and admin plane, SQLite store, as the tests start it) is
// seeded with 10,000 keys through the admin API. Each run opens /dashboard/keys signed in and
// takes the page's own clock (performance.now(), from the start of navigation) at the first
// idle moment after the first page of keys is drawn: the page is then drawn and answers input.
// Cold runs use a fresh browser context (empty cache); warm runs reload in the same one, where
// the hashed assets come from the cache.
import { request } from 'undici';
import { launchChromium, signIn, startDashboardStack, USERS } from '../test/lib/dashboard.js';

const KEYS = Number(process.env['KEYS'] ?? 10_000);
const RUNS = Number(process.env['RUNS'] ?? 7);
const CONCURRENCY = 16;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await startDashboardStack();
try {
  const seedStarted = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < KEYS) {
        const i = next++;
        const res = await stack.adminCall('POST', '/v1/keys', { name: `seeded key ${i}`, scopes: i % 3 === 0 ? ['read_campaigns'] : ['send_email', 'read_contacts'], environment: i % 4 === 0 ? 'test' : 'production' });
        if (res.status !== 201) throw new Error(`seeding key ${i}: ${res.status} ${JSON.stringify(res.body)}`);
        // Spread over time, as real keys are, so that sorting by creation has work to do.
        if (i % 100 === 0) stack.clock.advance(60_000);
      }
    }),
  );
  console.log(`seeded ${KEYS} keys in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

  const { setCookie } = await signIn(stack.adminUrl, { email: USERS.admin.email, password: USERS.admin.password });
  const [name, value] = setCookie.split(';')[0]!.split('=') as [string, string];
  const cookie = { name, value, url: stack.adminUrl, httpOnly: true, sameSite: 'Strict' as const };

  const browser = await launchChromium();
  try {
    /** One load of the keys page; ms from navigation start to the first idle moment with keys drawn, and to the keys' answer. */
    const load = async (page: import('playwright-core').Page, how: 'goto' | 'reload') => {
      if (how === 'goto') await page.goto(`${stack.adminUrl}/dashboard/keys`, { waitUntil: 'commit' });
      else await page.reload({ waitUntil: 'commit' });
      await page.locator('tr[data-key-id]').nth(19).waitFor();
      return page.evaluate(
        () =>
          new Promise<{ tti: number; api: number }>((resolve) =>
            requestIdleCallback(() => {
              const keys = performance.getEntriesByType('resource').find((e) => e.name.includes('/v1/keys?')) as PerformanceResourceTiming | undefined;
              resolve({ tti: performance.now(), api: keys ? keys.responseEnd - keys.requestStart : NaN });
            }),
          ),
      );
    };
    const cold: { tti: number; api: number }[] = [];
    const warm: { tti: number; api: number }[] = [];
    // One unmeasured load first: the admin plane bundles the front-end on its first page.
    {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addCookies([cookie]);
      await load(await context.newPage(), 'goto');
      await context.close();
    }
    for (let run = 0; run < RUNS; run++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addCookies([cookie]);
      const page = await context.newPage();
      cold.push(await load(page, 'goto'));
      warm.push(await load(page, 'reload'));
      await context.close();
    }
    const line = (label: string, xs: { tti: number; api: number }[]) =>
      `${label}: time to interactive median ${Math.round(median(xs.map((x) => x.tti)))} ms (max ${Math.round(Math.max(...xs.map((x) => x.tti)))}), GET /v1/keys median ${Math.round(median(xs.map((x) => x.api)))} ms`;
    console.log(`keys page, ${KEYS} keys, ${RUNS} runs, Chromium ${browser.version()}`);
    console.log(line('cold (empty cache)', cold));
    console.log(line('warm (assets cached)', warm));
  } finally {
    await browser.close();
  }

  // What the admin plane serves: the page, then its script and stylesheet, plain and gzipped.
  const html = await (await request(`${stack.adminUrl}/dashboard/keys`)).body.text();
  console.log(`page weight (one script and one stylesheet serve every page); the HTML: ${Buffer.byteLength(html)} bytes`);
  for (const path of html.match(/\/dashboard\/assets\/app-[A-Z0-9]+\.(js|css)/g) ?? []) {
    const plain = Buffer.from(await (await request(stack.adminUrl + path)).body.arrayBuffer()).length;
    const gzip = Buffer.from(await (await request(stack.adminUrl + path, { headers: { 'accept-encoding': 'gzip' } })).body.arrayBuffer()).length;
    console.log(`  ${path.replace(/-[A-Z0-9]+\./, '.')}: ${plain} bytes, gzip ${gzip}`);
  }
} finally {
  await stack.close();
}
