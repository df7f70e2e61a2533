import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { schedulerActor } from '../core/audit.js';
import type { Logger } from '../core/log.js';
import { dueTransition, type KeyRecord } from '../core/record.js';
import type { Store } from '../core/store/store.js';
import { webhookSignature } from '../core/webhook-signature.js';
import { KeyService, type Issued } from './keys.js';

const BATCH = 200;
const MAX_ROUNDS = 50;

/**
 * Records what time brings: pending keys becoming active, expiries, the ends of rotation
 * graces, and scheduled rotations. It works from what is due in the store, so after downtime
 * it catches up on everything missed; a store lease keeps it to one admin process at a time.
 * The gateway does not wait for it: it judges every key's times itself.
 */
export class Scheduler {
  readonly #keys: KeyService;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #holder = `scheduler-${process.pid}-${randomUUID().slice(0, 8)}`;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;

  constructor(keys: KeyService, store: Store, log: Logger, intervalMs: number) {
    this.#keys = keys;
    this.#store = store;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#intervalMs);
  }

  /** One pass over everything due now; resolves with the number of transitions recorded. */
  tick(): Promise<number> {
    // Passes never overlap: a slow one (webhooks) is joined, not doubled.
    this.#running ??= this.#pass().finally(() => (this.#running = null));
    return this.#running;
  }

  async #pass(): Promise<number> {
    try {
      if (!(await this.#store.lease('scheduler', this.#holder, this.#intervalMs * 3))) return 0;
      let done = 0;
      const failed = new Set<string>();
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const now = this.#keys.clock.now();
        const due = (await this.#store.dueKeys(now, BATCH + failed.size)).filter((k) => !failed.has(k.id));
        if (due.length === 0) break;
        for (const rec of due) {
          try {
            await this.#process(rec, now);
            done++;
          } catch (err) {
            failed.add(rec.id);
            this.#log.warn('scheduled transition failed; retried next pass', { key_id: rec.id, err: (err as Error).message });
          }
        }
      }
      return done;
    } catch (err) {
      this.#log.warn('scheduler pass failed', { err: (err as Error).message });
      return 0;
    }
  }

  async #process(rec: KeyRecord, now: number): Promise<void> {
    const actor = schedulerActor(`sched-${randomUUID()}`);
    const due = dueTransition(rec, now);
    if (due === null) return;
    if (due !== 'rotate') {
      await this.#keys.recordTransition(rec.id, due, actor);
      return;
    }
    const policy = this.#keys.policy(rec.policy);
    if (!policy?.rotation) throw new Error(`policy ${rec.policy} no longer rotates keys`);
    const { url, secret, timeout_ms } = policy.rotation.webhook;
    await this.#keys.regenerate(rec.id, undefined, actor, rec.rotate_at, (issued) => deliverRotation(url, secret, timeout_ms, rec, issued));
    this.#log.info('key rotated', { key_id: rec.id });
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}

/**
 * POSTs a rotated key to the policy's webhook before the rotation is committed, so that no key
 * is issued that nobody received. The body is signed like `t=<unix seconds>,v1=<hex
 * HMAC-SHA-256(secret, "<t>.<body>")>` in `Keygate-Signature`. A rotation retried after a
 * failure sends a different key: receivers keep the latest for a `replaces` id.
 */
export async function deliverRotation(url: string, secret: string, timeoutMs: number, old: KeyRecord, issued: Issued): Promise<void> {
  const body = JSON.stringify({
    type: 'key.rotated',
    key: issued.key,
    key_id: issued.record.id,
    replaces: old.id,
    name: old.name,
    environment: old.environment,
    application: old.application,
    expires_at: issued.record.expires_at === null ? null : new Date(issued.record.expires_at).toISOString(),
  });
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'keygate-signature': webhookSignature(secret, body, Math.floor(Date.now() / 1000)) },
    body,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  await res.body.dump();
  if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`rotation webhook answered ${res.statusCode}`);
}
