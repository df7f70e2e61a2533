import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { BASE62, generateKey, parseKey, randomBase62 } from '../core/key-format.js';

// The scanning rules of docs/secret-scanning/ (gitleaks, GitHub custom pattern, TruffleHog)
// against keys Keygate mints and near misses, and the checksum snippets of its README run as
// written, with the false-positive rate of the checksum on a random corpus.

const doc = (name: string) => readFileSync(new URL(`../docs/secret-scanning/${name}`, import.meta.url), 'utf8');

/** The three rules as JavaScript regexes, each capturing the key in group 1. */
function rules(): Record<string, RegExp> {
  const gitleaks = /^regex = '''(.*)'''$/m.exec(doc('gitleaks.toml'))![1]!;
  const truffle = /^\s+keygate_key: '(.*)'$/m.exec(doc('trufflehog.yaml'))![1]!;
  const gh = JSON.parse(doc('github-custom-pattern.json')) as { secret_format: string; before_secret: string; after_secret: string };
  // GitHub's \A and \z are JavaScript's ^ and $ (without the m flag); what must come before
  // and after the secret is checked around it, not consumed with it.
  const edge = (s: string) => s.replace('\\A', '^').replace('\\z', '$');
  return {
    gitleaks: new RegExp(gitleaks, 'g'),
    trufflehog: new RegExp(truffle, 'g'),
    github: new RegExp(`(?<=${edge(gh.before_secret)})(${gh.secret_format})(?=${edge(gh.after_secret)})`, 'g'),
  };
}

const found = (re: RegExp, text: string) => [...text.matchAll(re)].map((m) => m[1]);

const CONTEXTS = [
  (k: string) => k,
  (k: string) => `KEYGATE_KEY=${k}\n`,
  (k: string) => `{"api_key":"${k}","other":1}`,
  (k: string) => `curl -H 'Authorization: Bearer ${k}' https://api.example.com`,
  (k: string) => `https://api.example.com/v1?api_key=${k}&page=2`,
  (k: string) => `const key = \`${k}\`;`,
];

t.test('every rule finds every minted key, in every context', async (t) => {
  const rs = rules();
  const keys: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const tag = i % 3 === 0 ? 'live' : i % 3 === 1 ? 'test' : 'abcdefghijklmnop'.slice(0, 1 + (i % 16));
    keys.push(generateKey('gw', tag));
  }
  for (const [name, re] of Object.entries(rs)) {
    let missed = 0;
    for (const [i, k] of keys.entries()) if (found(re, CONTEXTS[i % CONTEXTS.length]!(k))[0] !== k) missed++;
    t.equal(missed, 0, `${name}: all ${keys.length} keys found`);
    t.same(found(re, `${keys[0]} ${keys[1]}`), [keys[0], keys[1]], `${name}: two keys on one line`);
  }
  const gh = JSON.parse(doc('github-custom-pattern.json')) as { test_string: string };
  const sample = found(rs['github']!, gh.test_string)[0]!;
  t.ok(sample !== undefined && parseKey(sample, 'gw') === 'test', 'the GitHub test string holds a key with a valid checksum');
});

t.test('no rule finds a near miss', async (t) => {
  const k = generateKey('gw', 'live');
  const tail = k.slice('gw_live_'.length);
  const misses = [
    `gw_live_${tail.slice(1)}`, // 48 characters
    `gw_live_${tail}A`, // runs into more base62
    `gw_LIVE_${tail}`, // upper-case tag
    `gw_abcdefghijklmnopq_${tail}`, // 17-letter tag
    `xgw_live_${tail}`, // the prefix glued to a word
    `_gw_live_${tail}`,
    `gw__${tail}`, // no tag
    `gw_live_${tail.slice(0, 20)}-${tail.slice(21)}`,
    `sk_live_${tail}`, // another product's prefix
    `gw_live_${tail}_x`,
  ];
  for (const [name, re] of Object.entries(rules())) {
    for (const m of misses) t.same(found(re, `token: ${m} `), [], `${name}: ${m.slice(0, 24)}…`);
  }
});

t.test('the checksum: a random corpus of the shape has (almost) no false positives', async (t) => {
  // A random tail passes with probability 1 / 62^6 × (62^6 / 2^32) … = about 1 / 5.7e10.
  const N = 200_000;
  let passed = 0;
  for (let i = 0; i < N; i++) if (parseKey(`gw_live_${randomBase62(49)}`, 'gw') !== null) passed++;
  t.equal(passed, 0, `${passed} of ${N.toLocaleString('en-US')} random strings of the shape pass the checksum`);
  // And a single changed character of a real key never passes (CRC-32 catches every one-character change).
  const k = generateKey('gw', 'live');
  let changed = 0;
  for (let i = 8; i < k.length; i++) {
    for (const c of BASE62) {
      if (c === k[i]) continue;
      if (parseKey(k.slice(0, i) + c + k.slice(i + 1), 'gw') !== null) changed++;
    }
  }
  t.equal(changed, 0, 'no one-character change of a key passes');
});

/** The README's code block in `lang` that follows the comment naming it. */
function snippet(lang: string): string {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(doc('README.md'));
  return m![1]!;
}

t.test("the README's Node.js and Python checks agree with Keygate's", async (t) => {
  const good = [generateKey('gw', 'live'), generateKey('gw', 'test'), generateKey('acme', 'staging')];
  const bad = [good[0]!.slice(0, -1) + (good[0]!.endsWith('0') ? '1' : '0'), `gw_live_${randomBase62(49)}`, 'gw_live_short', ''];
  const cases = [...good, ...bad];
  const expected = cases.map((c) => parseKey(c, c.split('_')[0]!) !== null);
  t.same(expected, [true, true, true, false, false, false, false]);

  const js = `${snippet('js').replace(/^import .*$/m, "import { crc32 } from 'node:zlib';")}\nconsole.log(JSON.stringify(${JSON.stringify(cases)}.map(keygateChecksumOk)));`;
  const node = spawnSync(process.execPath, ['--input-type=module', '-e', js], { encoding: 'utf8' });
  t.equal(node.status, 0, node.stderr);
  t.same(JSON.parse(node.stdout), expected, 'Node.js snippet');

  const py = `${snippet('python')}\nimport json\nprint(json.dumps([keygate_checksum_ok(s) for s in ${JSON.stringify(cases)}]))`;
  const python = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
  t.equal(python.status, 0, `python3 runs the snippet (installed by .ci/deps): ${python.stderr}`);
  t.same(JSON.parse(python.stdout), expected, 'Python snippet');
});
