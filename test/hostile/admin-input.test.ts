import t from 'tap';
import { startStack } from '../lib/stack.js';

// Admin bodies an attacker holding a token might send: deep nesting is a 400 that names the
// problem, never a 500 (docs/operations.md, Security).

const stack = await startStack();
t.teardown(() => stack.close());

t.test('deeply nested JSON is refused with 400 validation_failed, in every place a body is read', async (t) => {
  for (const depth of [33, 1_000, 20_000]) {
    for (const [method, path] of [
      ['POST', '/v1/keys'],
      ['POST', '/v1/applications'],
    ] as const) {
      const nested = `{"name":"x","meta":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const res = await stack.adminCall(method, path, nested);
      t.equal(res.status, 400, `${method} ${path} at depth ${depth}`);
      t.equal(res.body?.error, 'validation_failed');
      t.match(res.body?.details?.[0]?.message, /nests deeper than 32/);
    }
  }
  const key = await stack.createKey();
  const patched = await stack.adminCall('PATCH', `/v1/keys/${key.id}`, `{"meta":{"a":${'{"b":'.repeat(40)}1${'}'.repeat(40)}}}`);
  t.equal(patched.status, 400, 'PATCH too');
});

t.test('brackets inside strings do not count, and ordinary nesting passes', async (t) => {
  const res = await stack.adminCall('POST', '/v1/keys', `{"name":"${'['.repeat(100)}","meta":{"a":{"b":[1,2,{"c":"]]]]\\\\\\"[["}]}}}`);
  t.equal(res.status, 201, JSON.stringify(res.body));
});
