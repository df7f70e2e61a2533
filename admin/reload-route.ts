import { randomUUID } from 'node:crypto';
import type { Actor, AuditEntry } from '../core/audit.js';
import type { Clock } from '../core/clock.js';
import { HttpError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { ReloadOutcome, WorkerOutcome } from '../core/reload.js';
import type { Store } from '../core/store/store.js';
import { route, sendJson, type Call, type Route } from './http.js';

/** What a reload of the process did: its own outcome, and each gateway worker's when it has workers. */
export interface ReloadAnswer extends ReloadOutcome {
  /** Each worker's outcome (its own generation counts apart); absent without workers. */
  workers?: WorkerOutcome[];
}

/** Reloads the configuration of the process the admin plane runs in (bin/main.ts gives it). */
export type ReloadHandler = (by: Actor) => Promise<ReloadAnswer>;

/**
 * POST /v1/admin/reload: what SIGHUP does, for an admin token of no tenant (the configuration
 * is every tenant's). The answer is 200 when the file was applied (everywhere, with workers),
 * else 422 `config_invalid`; either way it names the changes a restart would need. Each call is
 * in the audit log, applied or refused.
 */
export function reloadRoute(d: { store: Store; clock: Clock; log: Logger; reload: ReloadHandler | null }): Route<Call> {
  return route('POST', '/v1/admin/reload', 'admin', {
    operationId: 'reloadConfiguration',
    tag: 'Operations',
    summary: 'Reload the configuration',
    description:
      'Reads the configuration file again, as SIGHUP does (docs/operations.md, “Reloading the configuration”). A valid file replaces the APIs, routes, plans, scopes, policies, ' +
      'trusted proxies, headers, error links and log settings for new requests, while requests under way finish on the configuration they started on; ' +
      'changes to sections read at start-up only (listeners, store, workers, the admin listener and tokens, and the like) are named in `restart_required` and not applied. ' +
      'An invalid file is refused whole (422 `config_invalid`, every problem in `details`) and the running configuration is kept. With gateway workers, every worker reloads and `workers` has each one’s answer. ' +
      'Only an admin token of no tenant may reload.',
    responses: {
      200: { description: 'The file was applied.', schema: 'ReloadResult' },
      422: {
        description:
          '`config_invalid`: the file was refused and nothing was applied. The error body carries `ok` (false), `generation` (still running), `changed`, `restart_required`, ' +
          '`errors`, `workers` as in ReloadResult, and `details`: every problem (`path`, `message`, `line` and `column` when the file places it, `worker` for a worker’s).',
        schema: 'Error',
      },
    },
    conflict: '`conflict`: this admin plane was started without a configuration file to read again.',
  }, async (c) => {
    if (c.actor.tenant !== null) {
      throw new HttpError('forbidden', 'A token limited to a tenant may not reload the configuration, which every tenant shares; use an admin token of no tenant.');
    }
    if (d.reload === null) throw new HttpError('conflict', 'This admin plane was started without a configuration file to read again.');
    const answer = await d.reload(c.actor);
    const applied = answer.ok && (answer.workers ?? []).every((w) => w.ok);
    await d.store.commit({ audit: [auditEntry(c.actor, d.clock.now(), answer, applied)] }).catch((err: Error) => {
      // The reload itself is done; a store that cannot take the entry now is logged, not a failure of the reload.
      d.log.warn('reload not audited: store unavailable', { request_id: c.requestId, err: err.message });
    });
    if (applied) return sendJson(c.res, 200, answer, c.requestId);
    const details = [...answer.errors, ...(answer.workers ?? []).flatMap((w) => w.errors.map((e) => ({ ...e, worker: w.worker })))];
    throw new HttpError('config_invalid', undefined, { ...answer, details });
  });
}

function auditEntry(by: Actor, now: number, answer: ReloadAnswer, applied: boolean): AuditEntry {
  const changes: AuditEntry['changes'] = {
    generation: { from: applied ? answer.generation - 1 : answer.generation, to: answer.generation },
  };
  if (answer.changed.length > 0) changes['sections'] = { from: null, to: answer.changed };
  if (answer.restart_required.length > 0) changes['restart_required'] = { from: null, to: answer.restart_required.map((r) => r.path) };
  if (!applied) changes['errors'] = { from: null, to: answer.errors.length + (answer.workers ?? []).reduce((n, w) => n + w.errors.length, 0) };
  return {
    id: `aud_${now.toString(36)}_${randomUUID().slice(0, 8)}`,
    time: now,
    actor: by.name,
    role: by.role,
    tenant: null,
    ip: by.ip,
    request_id: by.request_id,
    action: applied ? 'config.reloaded' : 'config.reload_refused',
    target_type: 'config',
    target_id: 'configuration',
    changes,
  };
}
