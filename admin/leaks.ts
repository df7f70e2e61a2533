import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Actor } from '../core/audit.js';
import { HttpError } from '../core/errors.js';
import { parseKey } from '../core/key-format.js';
import { keyStatus, type KeyRecord } from '../core/record.js';
import { route, sendJson, validationError, type Call, type Route } from './http.js';
import type { KeyService } from './keys.js';
import { deliverRotation } from './scheduler.js';

// Leaked keys (docs/secret-scanning/README.md): an operator who found a key pastes it
// (POST /v1/keys/leaked), or GitHub's secret scanning reports what it found in public code
// (POST /v1/leaks, its partner alert format, signed). A live key gets `leaks.action`; a string
// that is not a Keygate key (shape or checksum) is answered without asking the store.

/** The body of POST /v1/keys/leaked. */
export const leakedKeyBody = z.strictObject({
  key: z.string().min(1).max(200),
  /** Where it was found: a label for the timeline and the audit log. */
  source: z.string().min(1).max(200).default('reported by an operator'),
  url: z.string().max(2048).nullable().default(null),
});

/** One entry of GitHub's partner alert (https://docs.github.com/code-security/secret-scanning). */
const githubAlert = z.array(
  z.object({
    token: z.string().max(1024),
    type: z.string().max(200),
    url: z.string().max(4096).nullable().optional(),
    source: z.string().max(200).nullable().optional(),
  }),
);

type Label = 'true_positive' | 'false_positive';

export interface LeakDeps {
  config: Config;
  keys: KeyService;
}

export function leakRoutes(d: LeakDeps): Route<Call>[] {
  const { config, keys } = d;
  const action = config.leaks.action;
  const githubKeys = new Map<string, KeyObject>(config.leaks.github_public_keys.map((k) => [k.id, createPublicKey(k.pem)]));

  /**
   * Gives a live key `leaks.action`. `rotate` regenerates it with `leaks.rotate_grace_seconds`
   * of grace, the new key POSTed to its policy's rotation webhook; a key whose policy has no
   * rotation webhook cannot receive a new key, so it is suspended instead. Answers what was done.
   */
  const respond = async (rec: KeyRecord, found: { source: string; url: string | null }, actor: Actor): Promise<{ action: string; rec: KeyRecord }> => {
    if (action !== 'rotate') return { action, rec: await keys.reportLeak(rec.id, action, found, actor) };
    const rotation = keys.policy(rec.policy)?.rotation;
    if (!rotation) return { action: 'suspend', rec: await keys.reportLeak(rec.id, 'suspend', found, actor) };
    await keys.reportLeak(rec.id, 'notify', found, actor);
    const { url, secret, timeout_ms } = rotation.webhook;
    await keys.regenerate(rec.id, config.leaks.rotate_grace_seconds, actor, keys.clock.now(), (issued) => deliverRotation(url, secret, timeout_ms, rec, issued));
    return { action: 'rotate', rec: await keys.get(rec.id, { tenant: null }) };
  };

  /** The live key this token is, within `tenant` when given; null for anything else. */
  const liveKey = async (token: string, tenant: string | null): Promise<KeyRecord | null> => {
    // Checked before the store is asked: most strings a scanner sends are not keys at all.
    if (parseKey(token, config.keys.prefix) === null) return null;
    const rec = await keys.byPlaintext(token);
    if (rec === null || (tenant !== null && rec.tenant !== tenant)) return null;
    const status = keyStatus(rec, keys.clock.now());
    return status === 'revoked' || status === 'expired' ? null : rec;
  };

  return [
    route('POST', '/v1/keys/leaked', 'write_keys', {
      operationId: 'reportLeakedKey',
      tag: 'Keys',
      summary: 'Report a leaked key',
      description:
        'For a key someone found where it should not be: when it is a live key (within the token’s tenant), it gets `leaks.action` from the configuration ' +
        '(`suspend` by default; `revoke`; `rotate`, a successor sent to its policy’s rotation webhook while the old key works `leaks.rotate_grace_seconds` more, ' +
        'or `suspend` when its policy has no rotation webhook; or `notify`, recorded only), and a `leaked` event in its timeline and a `key.leaked` audit entry record where it was found. ' +
        'Anything else (not a key, a wrong checksum, an unknown, revoked or expired key) is answered `false_positive` and changes nothing.',
      body: { schema: leakedKeyBody, name: 'LeakedKeyRequest' },
      responses: { 200: { description: 'What the key was, and what was done.', schema: 'LeakReport' } },
    }, async (c) => {
      const body = c.parse(leakedKeyBody, await c.body());
      const rec = await liveKey(body.key, c.actor.tenant);
      if (rec === null) return sendJson(c.res, 200, { label: 'false_positive', action: null, key: null }, c.requestId);
      const done = await respond(rec, { source: body.source, url: body.url }, c.actor);
      sendJson(c.res, 200, { label: 'true_positive', action: done.action, key: keys.wire(done.rec) }, c.requestId);
    }),
    route('POST', '/v1/leaks', 'public', {
      operationId: 'receiveGithubLeakAlert',
      tag: 'Keys',
      summary: 'GitHub secret-scanning alert',
      description:
        'GitHub secret scanning’s partner alert: a list of `{ token, type, url, source }`, signed with ECDSA (headers `Github-Public-Key-Identifier` and ' +
        '`Github-Public-Key-Signature`) by a key in `leaks.github_public_keys`. Each live key gets `leaks.action` as in “Report a leaked key”; the answer ' +
        'labels each token by its SHA-256, as GitHub expects. Off (404) while no public key is configured.',
      responses: {
        200: { description: 'Each token’s label.', schema: 'GithubLeakLabels' },
        401: { description: 'The signature is missing, names an unknown key, or does not verify.', schema: 'Error' },
      },
    }, async (c) => {
      if (githubKeys.size === 0) throw new HttpError('not_found', 'GitHub leak alerts are off: leaks.github_public_keys is empty.');
      const raw = await readRaw(c.req, c.res, config.admin.max_body_bytes);
      const keyId = c.req.headers['github-public-key-identifier'];
      const signature = c.req.headers['github-public-key-signature'];
      const publicKey = typeof keyId === 'string' ? githubKeys.get(keyId) : undefined;
      if (publicKey === undefined || typeof signature !== 'string' || !signed(raw, signature, publicKey)) {
        throw new HttpError('unauthorized', 'The alert’s signature is missing, names a key not in leaks.github_public_keys, or does not verify.');
      }
      let alert: z.infer<typeof githubAlert>;
      try {
        const parsed = githubAlert.safeParse(JSON.parse(raw.toString('utf8')));
        if (!parsed.success) throw new Error('shape');
        alert = parsed.data;
      } catch {
        throw validationError([{ path: '', message: 'must be a JSON array of { token, type, url, source }' }]);
      }
      if (alert.length > config.leaks.max_tokens) {
        throw validationError([{ path: '', message: `holds ${alert.length} tokens; at most ${config.leaks.max_tokens} (leaks.max_tokens)` }]);
      }
      const actor: Actor = { ...c.actor, name: 'github-secret-scanning', role: 'system' };
      const labels: { token_hash: string; token_type: string; label: Label }[] = [];
      for (const entry of alert) {
        const rec = await liveKey(entry.token, null);
        if (rec !== null) {
          await respond(rec, { source: `github: ${entry.source ?? 'unknown'}`, url: entry.url ?? null }, actor);
        }
        labels.push({
          token_hash: createHash('sha256').update(entry.token).digest('hex'),
          token_type: entry.type,
          label: rec === null ? 'false_positive' : 'true_positive',
        });
      }
      sendJson(c.res, 200, labels, c.requestId);
    }),
  ];
}

/** Whether `signature` (base64 DER ECDSA over SHA-256, as GitHub sends it) signs `body`. */
function signed(body: Buffer, signature: string, key: KeyObject): boolean {
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** The body as bytes (the signature covers them exactly), at most `limit`; refused past it. */
async function readRaw(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer> {
  const tooLarge = () => {
    res.shouldKeepAlive = false;
    return new HttpError('payload_too_large', `Request body is larger than ${limit} bytes.`);
  };
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.pause();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
