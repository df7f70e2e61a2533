import t, { type Test } from 'tap';
import { ADMIN_TOKEN, startStack } from '../lib/stack.js';

// What a gateway token can send to POST /v1/usage/events, against the default store (SQLite):
// event times are the sender's, and a batch dated far in the future must neither end the
// retention of everything already stored nor break the lists that show it.

const GATEWAY_TOKEN = 'test-gateway-token-0123456789';

async function stack(t: Test) {
  const s = await startStack({
    overrides: () => ({
      admin: {
        port: 0,
        tokens: [
          { name: 'ops', token: ADMIN_TOKEN, role: 'admin' },
          { name: 'edge', token: GATEWAY_TOKEN, role: 'gateway' },
        ],
      },
    }),
  });
  t.teardown(() => s.close());
  return s;
}

const event = (time: number, status: number, id: string) => ({
  time,
  request_id: id,
  key_id: null,
  api: 'emails',
  method: 'GET',
  route: null,
  status,
  outcome: status >= 500 ? 'upstream_error' : 'ok',
  latency_ms: 1,
});

t.test('one event dated far in the future does not end the retention of every stored bucket', async (t) => {
  const s = await stack(t);
  // In production the admin plane's clock is the machine's, which the store also reads.
  s.clock.set(Date.now());
  const now = s.clock.now();
  const honest = await s.adminCall('POST', '/v1/usage/events', { id: 'honest', events: [event(now - 2_000, 200, 'a'), event(now - 1_000, 200, 'b')] }, GATEWAY_TOKEN);
  t.equal(honest.status, 200);
  t.equal((await s.adminCall('GET', '/v1/usage?range=24h')).body.totals.requests, 2, 'the honest traffic is counted');

  // The year 275759: a valid Date, and a bucket whose start is past every other's retention.
  const hostile = await s.adminCall('POST', '/v1/usage/events', { id: 'from-the-future', events: [event(8.64e15 - 86_400_000, 200, 'c')] }, GATEWAY_TOKEN);
  t.ok(hostile.status === 200 || hostile.status === 400, `answered ${hostile.status}`);
  t.equal((await s.adminCall('GET', '/v1/usage?range=24h')).body.totals.requests, 2, 'the honest traffic is still counted');
});

t.test('an event dated past the end of JavaScript time is refused, and the error list still answers', async (t) => {
  const s = await stack(t);
  const res = await s.adminCall('POST', '/v1/usage/events', { id: 'past-the-end', events: [event(9e15, 503, 'd')] }, GATEWAY_TOKEN);
  t.equal(res.status, 400, 'refused at the edge');
  const errors = await s.adminCall('GET', '/v1/usage/errors');
  t.equal(errors.status, 200, 'GET /v1/usage/errors is not a 500');
});
