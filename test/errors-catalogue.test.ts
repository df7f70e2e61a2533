import { readFileSync } from 'node:fs';
import t from 'tap';
import { ERRORS } from '../core/errors.js';

t.test('README lists every error code with its status, and nothing else', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = [...readme.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])] as const);
  const documented = new Map(rows);
  for (const [code, def] of Object.entries(ERRORS)) {
    t.equal(documented.get(code), def.status, `${code} documented as ${def.status}`);
  }
  t.same([...documented.keys()].sort(), Object.keys(ERRORS).sort(), 'no stale rows');
});
