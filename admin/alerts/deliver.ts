import { createTransport, type Transporter } from 'nodemailer';
import { request } from 'undici';
import type { Config } from '../../config/schema.js';
import { toIso } from '../../core/clock.js';
import type { Alert, Delivery, DeliveryAttempt } from '../../core/alerts.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { Store } from '../../core/store/store.js';
import { webhookSignature } from '../../core/webhook-signature.js';
import { alertEmail, slackMessage } from './messages.js';
import { LeasedPeriodic } from './periodic.js';
import type { AlertService } from './service.js';

/** Deliveries tried per pass, and at once. */
const BATCH = 100;
const PARALLEL = 8;

/** An alert as webhooks receive it and `GET /v1/alerts` lists it. */
export function alertToWire(a: Alert) {
  return { id: a.id, type: a.type, created_at: toIso(a.created_at), tenant: a.tenant, key: a.key, data: a.data };
}

export function deliveryToWire(d: Delivery) {
  return {
    id: d.id,
    alert_id: d.alert_id,
    target: d.target,
    state: d.state,
    next_attempt_at: toIso(d.next_at),
    created_at: toIso(d.created_at),
    attempts: d.attempts.map((a) => ({ at: toIso(a.at), ok: a.ok, status: a.status, error: a.error, duration_ms: a.duration_ms })),
  };
}

class Refused extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

/**
 * Sends stored alerts to their destinations: each pending delivery that is due is tried; a
 * failure is recorded and tried again after a doubling backoff until `give_up_hours` after the
 * alert; so a receiver that is down loses nothing, and a restart resumes from the store (every
 * delivery is at least once: receivers deduplicate on the alert id). One admin process at a
 * time delivers (LeasedPeriodic).
 */
export class Deliverer {
  readonly #config: Config['alerts'];
  readonly #store: Store;
  readonly #service: AlertService;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #mailer: Transporter | null;
  readonly #periodic: LeasedPeriodic;

  constructor(config: Config, store: Store, service: AlertService, clock: Clock, log: Logger) {
    this.#config = config.alerts;
    this.#store = store;
    this.#service = service;
    this.#clock = clock;
    this.#log = log;
    this.#periodic = new LeasedPeriodic(store, 'alert-delivery', config.alerts.delivery.interval_ms, () => this.#pass());
    const email = config.alerts.email;
    this.#mailer =
      email === null
        ? null
        : createTransport({
            host: email.smtp.host,
            port: email.smtp.port,
            secure: email.smtp.secure,
            auth: email.smtp.user === null ? undefined : { user: email.smtp.user, pass: email.smtp.password ?? '' },
            connectionTimeout: email.smtp.timeout_ms,
            greetingTimeout: email.smtp.timeout_ms,
            socketTimeout: email.smtp.timeout_ms,
          });
  }

  start(): void {
    this.#periodic.start();
  }

  /** One pass over the deliveries due now; resolves with the number tried. Passes never overlap. */
  tick(): Promise<number> {
    return this.#periodic.tick().catch((err: Error) => {
      this.#log.warn('alert delivery pass failed', { err: err.message });
      return 0;
    });
  }

  async close(): Promise<void> {
    await this.#periodic.close();
    this.#mailer?.close();
  }

  async #pass(): Promise<number> {
    const due = await this.#store.dueDeliveries(this.#clock.now(), BATCH);
    let next = 0;
    const worker = async () => {
      while (next < due.length) await this.#attempt(due[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, due.length) }, worker));
    return due.length;
  }

  async #attempt(d: Delivery): Promise<void> {
    const alert = await this.#store.getAlert(d.alert_id);
    const started = this.#clock.now();
    const began = performance.now();
    let attempt: DeliveryAttempt;
    if (alert === null) {
      // Pruned with its alert's retention: nothing left to send.
      await this.#store.putDelivery({ ...d, state: 'failed', next_at: null });
      return;
    }
    try {
      const status = await this.#send(d.target, alert);
      attempt = { at: started, ok: true, status, error: null, duration_ms: Math.round(performance.now() - began) };
    } catch (err) {
      const status = err instanceof Refused ? err.status : null;
      attempt = { at: started, ok: false, status, error: (err as Error).message.slice(0, 500), duration_ms: Math.round(performance.now() - began) };
    }
    const attempts = [...d.attempts, attempt];
    const log = { alert_id: alert.id, delivery_id: d.id, target: d.target, attempt: attempts.length, status: attempt.status };
    if (attempt.ok) {
      await this.#store.putDelivery({ ...d, attempts, state: 'delivered', next_at: null });
      this.#log.info('alert delivered', log);
      return;
    }
    const { backoff_seconds, max_backoff_seconds, give_up_hours } = this.#config.delivery;
    const wait = Math.min(backoff_seconds * 2 ** (attempts.length - 1), max_backoff_seconds) * 1000;
    const next = this.#clock.now() + wait;
    if (next > alert.created_at + give_up_hours * 3_600_000) {
      await this.#store.putDelivery({ ...d, attempts, state: 'failed', next_at: null });
      this.#log.error('alert delivery given up', { ...log, err: attempt.error });
      return;
    }
    await this.#store.putDelivery({ ...d, attempts, next_at: next });
    this.#log.warn('alert delivery failed; retried later', { ...log, err: attempt.error, retry_at: new Date(next).toISOString() });
  }

  /** Sends one alert to one destination; answers the receiver's status, throws when it refused. */
  async #send(target: string, alert: Alert): Promise<number> {
    if (target === 'email') return this.#email(alert);
    const name = target.startsWith('webhook:') ? target.slice(8) : '';
    const hook = this.#config.webhooks.find((w) => w.name === name);
    if (hook === undefined) throw new Refused(`no webhook named ${name} in the configuration`, null);
    const body = JSON.stringify(hook.format === 'slack' ? slackMessage(alert) : alertToWire(alert));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Keygate-Alerts', 'keygate-event-id': alert.id };
    if (hook.secret !== null) headers['keygate-signature'] = webhookSignature(hook.secret, body, Math.floor(this.#clock.now() / 1000));
    const res = await request(hook.url, {
      method: 'POST',
      headers,
      body,
      headersTimeout: hook.timeout_ms,
      bodyTimeout: hook.timeout_ms,
    });
    await res.body.dump();
    // Redirects are not followed (undici's request does not): a 3xx is a failure to fix in the configuration.
    if (res.statusCode < 200 || res.statusCode > 299) throw new Refused(`the receiver answered ${res.statusCode}`, res.statusCode);
    return res.statusCode;
  }

  async #email(alert: Alert): Promise<number> {
    const email = this.#config.email;
    if (email === null || this.#mailer === null) throw new Refused('email is not configured', null);
    const key = alert.key === null ? null : await this.#store.getKey(alert.key.id);
    const to = this.#service.recipients(key);
    if (to.length === 0) throw new Refused('no recipient: no fixed address and no owner with an email', null);
    const { subject, text, html } = alertEmail(alert);
    try {
      const info = (await this.#mailer.sendMail({ from: email.from, to, subject, text, html, headers: { 'X-Keygate-Alert-Id': alert.id } })) as { response?: string };
      return Number.parseInt(info.response ?? '250', 10) || 250;
    } catch (err) {
      const code = (err as { responseCode?: number }).responseCode;
      throw new Refused(`SMTP: ${(err as Error).message}`, code ?? null);
    }
  }
}
