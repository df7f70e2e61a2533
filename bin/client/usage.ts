import { oneOf, str, time } from './args.js';
import { printJson, type Runnable } from './command.js';
import { UsageError } from './errors.js';
import { fields, table, text } from './format.js';

// `keygate usage`: traffic over every key or one (README, "Admin API"; docs/cli.md).

const pct = (v: number | null) => (v === null ? '-' : `${Math.round(v * 1000) / 10}%`);
const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);

export const USAGE_COMMAND: Runnable = {
  name: 'usage',
  summary: "Traffic over a range: totals, success rate, latency, the busiest endpoints and keys, status codes, rate-limit events.",
  options: {
    key: { value: 'ID', help: "one key's traffic (key_…); default: every key the token sees" },
    range: { value: 'RANGE', help: '1h|24h|7d|30d (default 24h)' },
    from: { value: 'TIME', help: 'RFC 3339: a window from this time (instead of --range)' },
    to: { value: 'TIME', help: 'RFC 3339: … to this time (default: now)' },
  },
  examples: ['keygate usage --range 7d', 'keygate usage --key key_3kTq8Zr2mW9xYp1c --range 24h --json'],
  async run(ctx) {
    const p = ctx.p;
    const range = oneOf(p, 'range', ['1h', '24h', '7d', '30d']);
    const from = time(p, 'from');
    const to = time(p, 'to');
    if (range !== undefined && (from !== undefined || to !== undefined)) throw new UsageError('give --range, or --from/--to, not both');
    if (from !== undefined && to !== undefined && Date.parse(from) >= Date.parse(to)) throw new UsageError('--to must be after --from');
    const key = str(p, 'key');
    const s = await ctx.client.call('GET', key === undefined ? '/v1/usage' : `/v1/keys/${encodeURIComponent(key)}/usage`, { query: { range, from, to } });
    if (p.json) return printJson(ctx, s);
    const t = s.totals;
    const rl = s.rate_limit;
    ctx.out(
      fields([
        ...(key === undefined ? [] : [['key', text(s.key_id)] as const]),
        ['from', text(s.range.from)],
        ['to', text(s.range.to)],
        ['requests', `${t.requests} (${t.successes} ok, ${t.client_errors} 4xx, ${t.server_errors} 5xx)`],
        ['success rate', pct(t.success_rate)],
        ['latency', `avg ${ms(t.avg_latency_ms)}, p50 ${ms(t.p50_latency_ms)}, p95 ${ms(t.p95_latency_ms)}, p99 ${ms(t.p99_latency_ms)}`],
        ['status codes', Object.keys(s.status_codes).length ? Object.entries(s.status_codes).map(([c, n]) => `${text(c)}: ${n}`).join(', ') : '-'],
        ['rate limited', `${rl.exceeded} times; peak ${rl.peak_requests_per_minute} requests a minute${rl.limit_per_minute == null ? '' : ` (limit ${rl.limit_per_minute})`}`],
      ]),
    );
    if (s.endpoints.length > 0) {
      ctx.out('\n');
      ctx.out(table(['API', 'METHOD', 'ROUTE', 'REQUESTS', 'ERRORS', 'SUCCESS', 'AVG LATENCY'], s.endpoints.map((e: any) => [text(e.api), text(e.method), text(e.route), String(e.requests), String(e.errors), pct(e.success_rate), ms(e.avg_latency_ms)])));
    }
    if (Array.isArray(s.keys) && s.keys.length > 0) {
      ctx.out('\n');
      ctx.out(table(['KEY', 'REQUESTS', 'ERRORS'], s.keys.map((k: any) => [text(k.key_id), String(k.requests), String(k.errors)])));
    }
  },
};
