import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { generateKey } from '../core/key-format.js';
import { KeyHasher } from '../core/key-hash.js';
import { SqliteStore } from '../core/store/sqlite-store.js';
import { ROOT } from './lib/cli.js';
import { keyRecord } from './lib/records.js';
import { within } from './lib/within.js';

// Durability of the SQLite store against kill -9: a real child process (test/lib/sqlite-writer.ts)
// commits admin writes (a key with its audit entry and lifecycle event, or a revocation with
// its own) as fast as it can and prints each one once its commit has answered; it is killed
// with SIGKILL at a random moment, many times over one database. After each kill the database
// opens, holds every acknowledged write, holds every write whole or not at all, passes its
// integrity check, and takes writes again. test/file-store.test.ts does the same through the
// CLI for the file store.
// CRASH_SEED=n replays the kill moments (the seed is printed).

const WRITER = fileURLToPath(new URL('./lib/sqlite-writer.ts', import.meta.url));
const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
t.comment(`kill moments seed ${seed} (CRASH_SEED=${seed} replays them)`);
/** Mulberry32: the kill moments of a run, replayable from its seed. */
const random = (() => {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
})();

/**
 * Kills: at least MIN, at most MAX, and no new one after BUDGET_MS. Each costs a writer's start
 * (about 0.7 CPU-second, mostly tsx): 15-20 kills on a loaded 2-core machine, MIN on a very busy one.
 */
const MIN = 8;
const MAX = 30;
const BUDGET_MS = 20_000;

const hasher = new KeyHasher(null);

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Our environment without what tap adds for its own children (coverage loaders, TAP_* switches). */
function childEnv(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('TAP') || k.startsWith('_TAPJS_')) continue;
    out[k] = v;
  }
  return out;
}

interface Writer {
  child: ChildProcess;
  /** Complete lines printed so far. */
  lines: string[];
  /** Resolves once the process has exited and its output has been read to the end. */
  closed: Promise<void>;
  /** Wakes whoever waits on the output. */
  onLine: (() => void) | null;
  stderr: string;
}

/** Starts a writer that loads its modules and waits for `go`. */
function startWriter(t: Test, path: string, run: string): Writer {
  const child = spawn(process.execPath, ['--import=tsx', WRITER, path, run], { cwd: ROOT, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const w: Writer = { child, lines: [], closed: new Promise((r) => child.once('close', () => r())), onLine: null, stderr: '' };
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    w.lines.push(...parts);
    w.onLine?.();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (w.stderr += chunk));
  child.once('exit', () => w.onLine?.());
  return w;
}

/** Resolves once `pred` holds of the writer's output; rejects if it exits first. */
function waitOutput(w: Writer, pred: (lines: string[]) => boolean, what: string): Promise<void> {
  return within(
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pred(w.lines)) {
          w.onLine = null;
          resolve();
        } else if (w.child.exitCode !== null || w.child.signalCode !== null) {
          w.onLine = null;
          reject(new Error(`the writer exited (${w.child.exitCode ?? w.child.signalCode}) before ${what}: ${w.stderr}`));
        }
      };
      w.onLine = check;
      check();
    }),
    60_000,
    what,
  );
}

t.test('kill -9 during a burst of admin writes: every acknowledged write survives, none survives in part', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'keygate.db');
  const created = new Set<string>();
  const revoked = new Set<string>();
  const started = performance.now();
  // The next writer loads its modules (most of its start-up: tsx) while this one runs.
  const ready = [startWriter(t, path, 'r0')];
  let iterations = 0;
  let acknowledged = 0;
  for (; iterations < MAX && (iterations < MIN || performance.now() - started < BUDGET_MS); iterations++) {
    const w = ready.shift()!;
    ready.push(startWriter(t, path, `r${iterations + ready.length + 1}`));
    // The first two kills come as soon as the writer says it opens the store (the first one
    // creating the database: in or around its schema migration), the others after a random
    // number of acknowledged commits.
    const target = iterations < 2 ? -1 : Math.floor(random() * 100);
    w.child.stdin!.write('go\n');
    if (target < 0) await waitOutput(w, (l) => l.includes('opening'), 'opening');
    else await waitOutput(w, (l) => l.filter((x) => x.startsWith('created ') || x.startsWith('revoked ')).length >= target && l.includes('ready'), `${target} commits`);
    w.child.kill('SIGKILL');
    await within(w.closed, 30_000, 'the killed writer closes');
    t.equal(w.child.signalCode, 'SIGKILL', `run ${iterations}: killed (after ${target < 0 ? 'opening' : `${target}+ commits`})`);
    for (const line of w.lines) {
      const [kind, id] = line.split(' ');
      if (kind === 'created') created.add(id!);
      if (kind === 'revoked') revoked.add(id!);
    }
    acknowledged = created.size + revoked.size;

    const store = await SqliteStore.open({ path });
    try {
      t.same(store.integrityCheck(), ['ok'], `run ${iterations}: the database passes its integrity check`);
      const dump = store.dump();
      const keys = new Map(dump.keys.map((k) => [k.id, k]));
      const audit = new Map<string, number>();
      for (const a of dump.audit) audit.set(`${a.action} ${a.target_id}`, (audit.get(`${a.action} ${a.target_id}`) ?? 0) + 1);
      const events = new Map<string, number>();
      for (const e of dump.events) events.set(`${e.type} ${e.key_id}`, (events.get(`${e.type} ${e.key_id}`) ?? 0) + 1);

      const lost = [...created].filter((id) => !keys.has(id));
      t.same(lost, [], `run ${iterations}: every acknowledged key is there (${created.size} so far)`);
      const unrevoked = [...revoked].filter((id) => keys.get(id)?.revoked_at == null);
      t.same(unrevoked, [], `run ${iterations}: every acknowledged revocation is there (${revoked.size} so far)`);

      // Whole or not at all: each key has exactly its created entry and event; a revoked key
      // its revocation's; nothing refers to a key that is not there.
      const partial: string[] = [];
      for (const k of keys.values()) {
        if (audit.get(`key.created ${k.id}`) !== 1 || events.get(`created ${k.id}`) !== 1) partial.push(`created ${k.id}`);
        const r = k.revoked_at === null ? 0 : 1;
        if ((audit.get(`key.revoked ${k.id}`) ?? 0) !== r || (events.get(`revoked ${k.id}`) ?? 0) !== r) partial.push(`revoked ${k.id}`);
        if (k.version !== 1 + r) partial.push(`version ${k.id}`);
      }
      for (const a of dump.audit) if (!keys.has(a.target_id)) partial.push(`audit of a missing ${a.target_id}`);
      for (const e of dump.events) if (!keys.has(e.key_id)) partial.push(`event of a missing ${e.key_id}`);
      t.same(partial, [], `run ${iterations}: every commit is whole`);

      // And the store takes writes again (a key the next checks expect too).
      const rec = keyRecord(generateKey('gw', 'live'), hasher, Date.now(), { id: `key_check_${iterations}` });
      const written = await store.commit({
        keys: [{ rec, expected: 0 }],
        audit: [{ id: `aud_c_${rec.id}`, time: Date.now(), actor: 'test', role: 'admin', tenant: null, ip: '', request_id: 'check', action: 'key.created', target_type: 'key', target_id: rec.id, changes: {} }],
        events: [{ key_id: rec.id, type: 'created', scheduled_at: null, at: Date.now(), actor: 'test', detail: {} }],
      });
      t.equal(written.keys[0]!.version, 1, `run ${iterations}: the store takes writes again`);
      created.add(rec.id);
    } finally {
      await store.close();
    }
  }
  for (const w of ready) w.child.kill('SIGKILL');
  await Promise.all(ready.map((w) => w.closed));
  t.ok(iterations >= MIN, `${iterations} kills, ${acknowledged} acknowledged commits checked, in ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
