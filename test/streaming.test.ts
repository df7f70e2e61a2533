import { Readable } from 'node:stream';
import t from 'tap';
import { request } from 'undici';
import { WebSocket } from 'ws';
import { bearer, startStack } from './lib/stack.js';

// The upload route lifts the default 10 MiB body limit (max_body_bytes), and the API the default
// 30 s timeout_ms (which counts the upload, docs/operations.md, Security), as an API that takes
// large uploads would: on a busy machine 160 MiB can take longer than 30 s to pass.
const stack = await startStack({
  overrides: (upstream) => ({
    apis: [
      {
        name: 'emails',
        path_prefix: '/v1/emails',
        upstream,
        timeout_ms: 600_000,
        routes: [
          { method: 'PUT', path: '/v1/emails/upload', max_body_bytes: null },
          { method: '*', path: '/v1/emails/*' },
        ],
      },
    ],
  }),
});
t.teardown(() => stack.close());
const prod = stack.gw['production']!;
const { key } = await stack.createKey();
const SIZE = 160 * 1024 * 1024;

// The client, the gateway and the upstream share this process; collecting garbage before
// each sample (node runs with --expose-gc, see .taprc) leaves what is really held.
const gc = global.gc ?? (() => t.fail('run with --expose-gc'));
const retained = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Peak growth of retained memory over the baseline while `work` runs, sampled every 25 ms. */
async function peakGrowth(work: () => Promise<void>): Promise<number> {
  const base = retained();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, retained())), 25);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return peak - base;
}

t.test(`a ${SIZE >> 20} MiB download streams through without being held in memory`, async (t) => {
  let received = 0;
  const growth = await peakGrowth(async () => {
    const res = await request(`${prod}/v1/emails/bytes/${SIZE}`, { headers: bearer(key) });
    t.equal(res.statusCode, 200);
    for await (const chunk of res.body) received += (chunk as Buffer).length;
  });
  t.equal(received, SIZE, 'every byte arrived');
  t.ok(growth < 32 * 1024 * 1024, `memory stayed flat (grew ${(growth / 1048576).toFixed(1)} MiB)`);
});

t.test(`a ${SIZE >> 20} MiB upload streams through without being held in memory`, async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 98);
  let left = SIZE;
  const body = new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      left -= chunk.length;
      this.push(chunk);
    },
  });
  let status = 0;
  let answer: { bodyBytes?: number } = {};
  const growth = await peakGrowth(async () => {
    const res = await request(`${prod}/v1/emails/upload`, {
      method: 'PUT',
      headers: { ...bearer(key), 'content-type': 'application/octet-stream' },
      body,
    });
    status = res.statusCode;
    answer = (await res.body.json()) as { bodyBytes?: number };
  });
  t.equal(status, 200);
  t.equal(answer.bodyBytes, SIZE, 'the upstream received every byte');
  t.ok(growth < 32 * 1024 * 1024, `memory stayed flat (grew ${(growth / 1048576).toFixed(1)} MiB)`);
});

t.test('a WebSocket echo works through the gateway after the key checks', async (t) => {
  const ws = new WebSocket(`${prod.replace('http', 'ws')}/v1/emails/ws`, { headers: bearer(key) });
  const reply = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => ws.send('ping through keygate'));
    ws.once('message', (data) => resolve(String(data)));
    ws.once('error', reject);
    setTimeout(() => reject(new Error('no echo within 5 s')), 5000).unref();
  });
  t.equal(reply, 'ping through keygate');
  const upgrade = stack.upstream.seen.findLast((s) => s.url === '/v1/emails/ws')!;
  t.equal(upgrade.headers['authorization'], undefined, 'credential stripped on upgrade');
  t.equal(upgrade.headers['x-key-id'], (await stack.store.listKeys({ tenant: null, sort: 'created_at', order: 'desc', limit: 1, now: stack.clock.now() })).data[0]!.id);
  ws.close();
});

t.test('a WebSocket upgrade without a key is refused with the JSON error', async (t) => {
  const ws = new WebSocket(`${prod.replace('http', 'ws')}/v1/emails/ws`);
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    ws.once('open', () => reject(new Error('upgrade should have been refused')));
    ws.once('error', () => {});
  });
  t.equal(res.status, 401);
  t.equal(JSON.parse(res.body).error, 'missing_token');
});
