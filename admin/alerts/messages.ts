import type { Alert, AlertType } from '../../core/alerts.js';

/** An alert as people read it: in an email, in Slack. Never holds more of a key than its masked form. */
export interface AlertMessage {
  subject: string;
  /** What happened, one or two sentences. */
  what: string;
  /** What to do about it. */
  todo: string;
}

const num = (v: unknown) => (typeof v === 'number' ? v.toLocaleString('en-US') : String(v));
const pct = (v: unknown) => (typeof v === 'number' ? `${Math.round(v * 1000) / 10}%` : String(v));

const TEXT: Record<AlertType, (a: Alert, key: string) => AlertMessage> = {
  'key.expiring': (a, key) => ({
    subject: `API key ${key} expires in ${num(a.data['days_left'])} day(s)`,
    what: `The API key ${key} expires at ${String(a.data['expires_at'])}. Requests with it will then be refused with 401.`,
    todo: 'Create or regenerate a key, move your integration over to it, or extend this key’s expiry before then.',
  }),
  'key.expired': (a, key) => ({
    subject: `API key ${key} has expired`,
    what: `The API key ${key} expired at ${String(a.data['scheduled_at'] ?? a.data['at'])}; the gateway refuses it with 401.`,
    todo: 'Create a new key for any integration that still uses this one.',
  }),
  'key.rotated': (a, key) => ({
    subject: `API key ${key} was rotated`,
    what: `The API key ${key} was replaced by ${String(a.data['replaced_by'])}${a.data['grace_ends_at'] ? `; it keeps working until ${String(a.data['grace_ends_at'])}` : ' and no longer works'}.`,
    todo: 'Deploy the new key everywhere the old one is used before the grace period ends.',
  }),
  'key.revoked': (a, key) => ({
    subject: `API key ${key} was revoked`,
    what: `The API key ${key} was revoked${a.data['reason'] ? ` (${String(a.data['reason'])})` : ''} by ${String(a.data['actor'])}; the gateway refuses it with 401.`,
    todo: 'If this was not expected, check the audit log. Integrations still using the key need a new one.',
  }),
  'key.leaked': (a, key) => ({
    subject: `API key ${key} was found in public`,
    what: `The API key ${key} was reported leaked${a.data['source'] ? ` by ${String(a.data['source'])}` : ''}${a.data['url'] ? ` at ${String(a.data['url'])}` : ''}.`,
    todo: 'Treat the key as compromised: revoke or regenerate it, remove it from where it was published, and check its recent usage.',
  }),
  'key.used_after_revocation': (a, key) => ({
    subject: `Revoked API key ${key} is still being used`,
    what: `${num(a.data['requests'])} request(s) in the last ${num(a.data['window_minutes'])} minutes used the API key ${key}, which is revoked${a.data['replaced_by'] ? ` (replaced by ${String(a.data['replaced_by'])})` : ''}.`,
    todo: 'Some client has not moved to its new key: find it (see the key’s recent errors) and update its configuration.',
  }),
  'key.ip_denied': (a, key) => ({
    subject: `API key ${key} used from outside its IP allowlist`,
    what: `${num(a.data['requests'])} request(s) in the last ${num(a.data['window_minutes'])} minutes used the API key ${key} from addresses outside its allowlist; they were refused.`,
    todo: 'If the client moved, add its address to the allowlist; if not, the key may be in the wrong hands: regenerate it.',
  }),
  'key.rate_limited': (a, key) => ({
    subject: `API key ${key} keeps hitting its rate limit`,
    what:
      Number(a.data['would_have_been_refused'] ?? 0) > 0
        ? `${num(a.data['requests'])} request(s) with the API key ${key} in the last ${num(a.data['window_minutes'])} minutes hit its limits: ${num(a.data['refused'] ?? 0)} refused, ${num(a.data['would_have_been_refused'])} let through by a limit in shadow mode that would have refused them.`
        : `${num(a.data['requests'])} request(s) with the API key ${key} were refused by its rate limit in the last ${num(a.data['window_minutes'])} minutes.`,
    todo: 'Slow the client down (honour Retry-After), or raise the key’s rate limit or plan.',
  }),
  'key.error_rate': (a, key) => ({
    subject: `API key ${key}: ${pct(a.data['share'])} of requests failing`,
    what: `${pct(a.data['share'])} of the ${num(a.data['requests'])} requests with the API key ${key} in the last ${num(a.data['window_minutes'])} minutes were answered with an error.`,
    todo: 'Look at the key’s recent errors on its usage page to see which endpoint and error code.',
  }),
  'key.unusual_usage': (a, key) => ({
    subject: `API key ${key}: unusual traffic`,
    what: `The API key ${key} made ${num(a.data['requests'])} requests in the last hour, ${num(a.data['factor'])}× its hourly average of ${num(a.data['baseline_per_hour'])}.`,
    todo: 'If this traffic is not expected, the key may be misused: check its usage, and suspend or regenerate it.',
  }),
  'usage.error_rate': (a) => ({
    subject: `${pct(a.data['share'])} of all requests failing`,
    what: `${pct(a.data['share'])} of the ${num(a.data['requests'])} requests through the gateway in the last ${num(a.data['window_minutes'])} minutes were answered with an error.`,
    todo: 'Look at the recent errors on the usage page: an upstream may be down, or clients may be misconfigured.',
  }),
};

export function alertMessage(a: Alert): AlertMessage {
  const key = a.key === null ? '' : `“${a.key.name}” (${a.key.masked})`;
  return TEXT[a.type](a, key);
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Plain-text and HTML bodies of the alert's email. */
export function alertEmail(a: Alert): { subject: string; text: string; html: string } {
  const m = alertMessage(a);
  const facts = [`Alert: ${a.type}`, `Alert id: ${a.id}`, `Time: ${new Date(a.created_at).toISOString()}`];
  if (a.key) facts.push(`Key: ${a.key.name} (${a.key.masked}, ${a.key.id})`);
  const text = `${m.what}\n\nWhat to do: ${m.todo}\n\n${facts.join('\n')}\n`;
  const html =
    `<p>${escapeHtml(m.what)}</p><p><strong>What to do:</strong> ${escapeHtml(m.todo)}</p>` +
    `<p style="color:#555">${facts.map(escapeHtml).join('<br>')}</p>`;
  return { subject: `[Keygate] ${m.subject}`, text, html };
}

/** A Slack-compatible incoming-webhook message (`text` for notifications, blocks for the body). */
export function slackMessage(a: Alert): Record<string, unknown> {
  const m = alertMessage(a);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return {
    text: `Keygate: ${m.subject}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${esc(m.subject)}*\n${esc(m.what)}` } },
      { type: 'section', text: { type: 'mrkdwn', text: `*What to do:* ${esc(m.todo)}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: esc(`${a.type} · ${a.id} · ${new Date(a.created_at).toISOString()}`) }] },
    ],
  };
}
