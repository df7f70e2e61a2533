import t from 'tap';
import { bearer, call, startStack } from './lib/stack.js';

// The gateway listens on "::" (dual stack), so an IPv4 client arrives as ::ffff:127.0.0.1.
const stack = await startStack({
  overrides: () => ({
    listeners: [{ port: 0, host: '::', environment: 'production' }],
    trusted_proxies: ['127.0.0.1/32', '10.0.0.0/8'],
  }),
});
t.teardown(() => stack.close());
const port = new URL(stack.gw['production']!.replace('[::]', '[::1]')).port;
const prod = `http://127.0.0.1:${port}`;
const last = () => stack.upstream.seen[stack.upstream.seen.length - 1]!;

async function statusWith(allowlist: string[], xff?: string): Promise<number> {
  const { key } = await stack.createKey({ ip_allowlist: allowlist });
  const headers: Record<string, string> = bearer(key);
  if (xff !== undefined) headers['x-forwarded-for'] = xff;
  return (await call(`${prod}/v1/emails/list`, { headers })).status;
}

t.test('an IPv4-mapped IPv6 peer matches IPv4 CIDRs', async (t) => {
  t.equal(await statusWith(['127.0.0.0/8']), 200);
  t.equal(await statusWith(['10.0.0.0/8']), 403);
});

t.test('behind a trusted proxy the client is the right-most untrusted X-Forwarded-For entry', async (t) => {
  t.equal(await statusWith(['198.51.100.0/24'], '198.51.100.7'), 200);
  t.equal(await statusWith(['198.51.100.0/24'], '198.51.100.7, 10.1.2.3'), 200, 'trusted hops are skipped');
  t.equal(await statusWith(['10.0.0.0/8'], '198.51.100.7, 10.1.2.3'), 403, 'a trusted hop is never the client');
  t.equal(await statusWith(['203.0.113.0/24'], '203.0.113.9, 198.51.100.7'), 403, 'left-most entries are the client’s own claim');
  t.equal(await statusWith(['198.51.100.0/24'], '::ffff:198.51.100.7'), 200, 'mapped entries compare as IPv4');
  t.equal(await statusWith(['2001:db8::/32'], '2001:db8::1'), 200, 'IPv6 clients match IPv6 CIDRs');
});

t.test('a malformed X-Forwarded-For entry never satisfies an allowlist', async (t) => {
  for (const bad of ['not-an-ip', '1.2.3', '16909060', '999.1.1.1', '198.51.100.7 extra', '']) {
    t.equal(await statusWith(['0.0.0.0/0', '::/0'], `${bad}, 10.0.0.1`), 403, `"${bad}" refused`);
  }
});

t.test('ip_not_allowed names the client address as the gateway determined it, behind trusted proxies', async (t) => {
  const { key } = await stack.createKey({ ip_allowlist: ['192.0.2.0/24'] });
  const refused = async (xff?: string) => {
    const headers: Record<string, string> = bearer(key);
    if (xff !== undefined) headers['x-forwarded-for'] = xff;
    const res = await call(`${prod}/v1/emails/list`, { headers });
    t.equal(res.status, 403);
    t.equal(res.body?.error, 'ip_not_allowed');
    t.ok(res.body?.message.includes(`from ${res.body?.client_ip},`), 'the message names client_ip');
    return res.body?.client_ip as string;
  };
  t.equal(await refused(), '127.0.0.1', 'no X-Forwarded-For: the peer, IPv4-mapped form unwrapped');
  t.equal(await refused('198.51.100.7, 10.1.2.3'), '198.51.100.7', 'the right-most untrusted entry');
  t.equal(await refused('192.0.2.1, 198.51.100.7'), '198.51.100.7', 'not a spoofed entry left of it');
  // What a client can make a trusted proxy pass on: the entry as written, JSON-escaped, nothing else.
  const hostile = '"}<script>alert(1)</script>\\u0000';
  t.equal(await refused(`${hostile}, 10.0.0.1`), hostile, 'a malformed entry is named as written');
});

t.test('upstream X-Forwarded-For: trusted chains are extended with the peer', async (t) => {
  const { key } = await stack.createKey();
  await call(`${prod}/v1/emails/list`, { headers: { ...bearer(key), 'x-forwarded-for': '198.51.100.7', 'x-forwarded-proto': 'https' } });
  t.equal(last().headers['x-forwarded-for'], '198.51.100.7, 127.0.0.1');
  t.equal(last().headers['x-forwarded-proto'], 'https', 'a trusted proxy’s proto is kept');
});
