import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { RequestContext } from '../gateway/context.js';
import { buildRouteTable, matchRoute, type CompiledApi, type CompiledRoute } from '../gateway/routes.js';
import type { Runtime } from '../gateway/runtime.js';
import { createRouteStage } from '../gateway/stages/route.js';

// Route matching (gateway/routes.ts, docs/architecture.md, Route rules) as properties over
// random rule lists and paths, through the route stage with hand-built requests: the trie picks
// what a scan of the rules in order picks, and no respelling of a path (case, escapes, slashes,
// parameters, spaces, a suffix) gets another rule than the path itself: it gets the same one or
// is refused.
// FC_SEED=n replays a run (the seed is printed); FC_RUNS=n runs more than the 300 default.

const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
t.comment(`fast-check seed ${seed} (FC_SEED=${seed} replays it)`);
const options = { seed, numRuns: Number(process.env.FC_RUNS ?? 300) };

const LITERALS = ['a', 'b', 'send', 'list', 'x'];
const METHODS = ['GET', 'POST', '*'] as const;

interface RuleSpec {
  method: string;
  segments: string[];
  rest: boolean;
}

const ruleSpec: fc.Arbitrary<RuleSpec> = fc.record({
  method: fc.constantFrom(...METHODS),
  segments: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...LITERALS) }, { weight: 1, arbitrary: fc.constant(':p') }), {
    maxLength: 3,
  }),
  rest: fc.boolean(),
});
const pathSegments = fc.array(fc.constantFrom(...LITERALS, 'other'), { minLength: 0, maxLength: 4 });
const method = fc.constantFrom('GET', 'POST', 'HEAD', 'PUT');

function compileRules(specs: RuleSpec[], prefix: string): CompiledRoute[] {
  return specs.map((s, i) => ({
    name: `r${i}`,
    method: s.method,
    template: `${prefix}/${[...s.segments, ...(s.rest ? ['*'] : [])].join('/')}`.replace(/\/$/, '') || '/',
    scopes: [`s${i}`],
    policy: null,
    maxBody: undefined,
  }));
}

/** Two APIs: `/api` with the rules under test (default deny), `/` letting everything else through. */
function runtime(specs: RuleSpec[], caseSensitive = false): { rt: Runtime; rules: CompiledRoute[] } {
  const rules = compileRules(specs, '/api');
  const api = (name: string, prefix: string, routes: CompiledRoute[], unlisted: readonly string[] | null) =>
    ({ name, host: null, prefix, routes: buildRouteTable(routes, caseSensitive), unlisted }) as unknown as CompiledApi;
  return { rt: { apis: [api('api', '/api', rules, null), api('rest', '/', [], [])] } as unknown as Runtime, rules };
}

type Outcome = string;

/** `api route` when the route stage lets the request through, `refused` when it does not. */
function outcome(rt: Runtime, stage: ReturnType<typeof createRouteStage>, m: string, url: string): Outcome {
  const req = { url, method: m, headers: {}, socket: {} } as unknown as IncomingMessage;
  const ctx = new RequestContext(req, null, null, null, { environment: 'production' }, 0);
  if (stage(ctx) !== undefined) return 'refused';
  return `${ctx.api!.name} ${ctx.route?.name ?? '(unlisted)'}`;
}

/** The rule list scanned in order with one RegExp per rule: what the trie must agree with. */
function scan(rules: readonly CompiledRoute[], m: string, path: string): CompiledRoute | null {
  for (const r of rules) {
    const methodOk = r.method === '*' || r.method === m || (m === 'HEAD' && r.method === 'GET');
    if (methodOk && pattern(r.template).test(path)) return r;
  }
  return null;
}

function pattern(template: string): RegExp {
  let src = '';
  const parts = template.split('/');
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    if (part === '*' && i === parts.length - 1) return new RegExp(`^${src}(?:/.*)?$`);
    src += `/${part.startsWith(':') ? '[^/]+' : part}`;
  }
  return new RegExp(`^${src === '/' ? '/' : `${src}/?`}$`);
}

t.test('the trie picks the first matching rule, as a scan in order does', async (t) => {
  fc.assert(
    fc.property(fc.array(ruleSpec, { maxLength: 12 }), pathSegments, method, fc.boolean(), (specs, segments, m, slash) => {
      const { rules } = runtime(specs);
      const path = `/api${segments.map((s) => `/${s}`).join('')}${slash ? '/' : ''}`;
      const expected = scan(rules, m, path);
      const got = matchRoute(buildRouteTable(rules, false), m, path);
      return got === expected;
    }),
    options,
  );
  t.pass(`${options.numRuns} rule lists agree with the scan`);
});

type Unit = { text: string; locked: boolean };
/** One change to a path: `segment` and `at` pick a segment and a character, `upper` a case or a side. */
interface Rewrite {
  kind: 'case' | 'encode' | 'params' | 'slash' | 'space' | 'suffix' | 'trailing';
  segment: number;
  at: number;
  upper: boolean;
}

const rewrite: fc.Arbitrary<Rewrite> = fc.record({
  kind: fc.constantFrom('case', 'encode', 'params', 'slash', 'space', 'suffix', 'trailing'),
  segment: fc.nat(6),
  at: fc.nat(12),
  upper: fc.boolean(),
});

const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h}`;
};

/**
 * A respelling of `/seg/seg…`. Escapes are of the path's own characters (an escape of "%"
 * would be a double encoding, another path to an upstream that decodes once); the parameters
 * and spaces added are never encoded (`%3B` is not a parameter to servlet containers), and a
 * suffix goes on the name, inside the spaces around it (no router reads `send%20.json` as
 * `send`).
 */
function respell(segments: string[], rewrites: Rewrite[]): string {
  const segs: Unit[][] = segments.map((s) => [...s].map((c) => ({ text: c, locked: false })));
  let trailing = false;
  for (const r of rewrites) {
    if (r.kind === 'trailing') {
      trailing = true;
      continue;
    }
    const named = segs.filter((s) => s.length > 0);
    if (named.length === 0) continue;
    if (r.kind === 'suffix') {
      // On the segment's name: before the spaces and parameters added after it.
      const last = named[named.length - 1]!;
      let at = last.length;
      while (at > 0 && last[at - 1]!.locked) at--;
      last.splice(at, 0, ...[...'.json'].map((c) => ({ text: c, locked: false })));
      continue;
    }
    const seg = named[r.segment % named.length]!;
    if (r.kind === 'slash') segs.splice(segs.indexOf(seg), 0, []);
    else if (r.kind === 'params') seg.push({ text: ';x=Y', locked: true });
    else if (r.kind === 'space') {
      if (r.upper) seg.unshift({ text: '%20', locked: true });
      else seg.splice(seg.findIndex((u) => u.text.startsWith(';')) >>> 0, 0, { text: '%20', locked: true });
    } else {
      const unit = seg[r.at % seg.length]!;
      if (unit.locked) continue;
      if (r.kind === 'case') unit.text = r.upper ? unit.text.toUpperCase() : unit.text.toLowerCase();
      else if (unit.text.length === 1) unit.text = hex(unit.text, r.upper);
    }
  }
  return `${segs.map((s) => `/${s.map((u) => u.text).join('')}`).join('')}${trailing ? '/' : ''}`;
}

t.test('a respelled path gets the rule of the path itself, or is refused', async (t) => {
  let respelled = 0;
  let refused = 0;
  fc.assert(
    fc.property(
      fc.array(ruleSpec, { maxLength: 12 }),
      pathSegments,
      method,
      fc.array(rewrite, { minLength: 1, maxLength: 6 }),
      (specs, segments, m, rewrites) => {
        const { rt } = runtime(specs);
        const stage = createRouteStage(rt);
        const canonical = outcome(rt, stage, m, `/api${segments.map((s) => `/${s}`).join('')}`);
        const variant = respell(['api', ...segments], rewrites);
        const got = outcome(rt, stage, m, variant);
        respelled++;
        if (got === 'refused') refused++;
        if (got !== 'refused' && got !== canonical) throw new Error(`${m} ${variant}: ${got}, but the path itself gets ${canonical}`);
      },
    ),
    options,
  );
  t.pass(`${respelled} respellings: ${respelled - refused} got the path's own rule, ${refused} were refused`);
});

t.test('in a case-sensitive API a respelling that keeps the case gets the same rule, or is refused', async (t) => {
  fc.assert(
    fc.property(
      fc.array(ruleSpec, { maxLength: 12 }),
      pathSegments,
      method,
      fc.array(rewrite.filter((r) => r.kind !== 'case'), { minLength: 1, maxLength: 6 }),
      (specs, segments, m, rewrites) => {
        const { rt } = runtime(specs, true);
        const stage = createRouteStage(rt);
        const canonical = outcome(rt, stage, m, `/api${segments.map((s) => `/${s}`).join('')}`);
        const got = outcome(rt, stage, m, respell(['api', ...segments], rewrites));
        return got === 'refused' || got === canonical;
      },
    ),
    options,
  );
  t.pass('no case-keeping respelling changed the rule');
});
