import { readFileSync } from 'node:fs';
import type { Client } from './connection.js';

/**
 * A script's source from `lua/` beside this module. Read relative to the module, not the
 * working directory, so it is found both from the sources (tests, via tsx) and from dist/,
 * where the build copies every `*.lua` under core/ to the same relative path.
 */
function lua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
}

// An EVAL script cannot call another script or load a library (Redis Functions could, but
// need Redis 7 and a FUNCTION LOAD on every node), so logic that scripts share is a fragment
// of local functions, prepended to each script that uses it when the scripts are loaded.
// `usage` and `ingest` both add to the per-key counters. They stay two scripts, since one for
// both would change how recordUsage's values reach Redis (verbatim ARGV strings, not a JSON
// batch decoded by cjson and applied at most once), and both call `add_usage` from
// counters.lua, which also holds the one reader of those counters (commit, by-hash, by-ids).
const counters = lua('counters');
const clock = lua('clock');
const expiring = lua('expiring');

/** Every script the store runs, by the command name it is defined under; loaded once. */
const SOURCES = {
  kgCommit: `${counters}\n${expiring}\n${lua('commit')}`,
  kgExpiringIndex: `${expiring}\n${lua('expiring-index')}`,
  kgAlertAdd: lua('alert-add'),
  kgAlertPrune: lua('alert-prune'),
  kgDeliveryPut: lua('delivery-put'),
  kgUsage: `${counters}\n${lua('usage')}`,
  kgIngest: `${counters}\n${lua('ingest')}`,
  kgByHash: `${counters}\n${lua('by-hash')}`,
  kgByIds: `${counters}\n${lua('by-ids')}`,
  kgMember: `${clock}\n${lua('member')}`,
  kgLagging: `${clock}\n${lua('lagging')}`,
  kgLease: lua('lease'),
  kgQuota: lua('quota'),
} as const;

/** The shared rate limiter's script (core/shared-limiter.ts), which names its bucket as KEYS[1]. */
export const TAKE = `${clock}\n${lua('take')}`;

/**
 * The commands `defineScripts` adds. Each takes one key, which only routes the call to the
 * deployment's slot (every record shares the hash tag `{prefix}`, see redis-store.ts); the
 * scripts build their key names from the prefix in ARGV[1]. kgLease and kgQuota name their keys.
 */
export interface Scripts {
  kgCommit(routing: string, prefix: string, payload: string): Promise<string[]>;
  kgUsage(routing: string, prefix: string, ...args: (string | number)[]): Promise<number>;
  kgIngest(routing: string, prefix: string, id: string, payload: string, keep: number): Promise<number>;
  kgByHash(routing: string, prefix: string, hash: string): Promise<[string, string, string, string] | null>;
  kgByIds(routing: string, prefix: string, ...ids: string[]): Promise<string[]>;
  kgMember(routing: string, prefix: string, id: string, ttl: number): Promise<number>;
  kgLagging(routing: string, prefix: string, seq: string): Promise<number>;
  kgLease(key: string, holder: string, ttl: number): Promise<number>;
  kgQuota(key: string, initial: number, refill: number | '', op: string, amount: number, start: number, keepMs: number | ''): Promise<[number, string]>;
  kgExpiringIndex(routing: string, prefix: string, ...args: string[]): Promise<number>;
  kgAlertAdd(routing: string, prefix: string, payload: string): Promise<number>;
  kgAlertPrune(routing: string, prefix: string, bound: string, chunk: number): Promise<number>;
  kgDeliveryPut(routing: string, prefix: string, id: string, state: string, attempts: string, next: string): Promise<number>;
}

export type ScriptClient = Client & Scripts;

/** Defines the store's scripts on `client` (ioredis sends each by its SHA, loading it on a miss). */
export function defineScripts(client: Client): ScriptClient {
  for (const [name, source] of Object.entries(SOURCES)) client.defineCommand(name, { numberOfKeys: 1, lua: source });
  return client as ScriptClient;
}
