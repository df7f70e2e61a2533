import { credits, expires, int, list, meta, oneOf, quota, rateLimit, seconds, str, time } from './args.js';
import { printJson, pages, more, type Context, type Runnable } from './command.js';
import { UsageError } from './errors.js';
import { ago, clean, fields, table, text, when } from './format.js';
import { readAll } from './hash-password.js';

// `keygate keys <verb>`: the key routes of the admin API (README, "Admin API"; docs/cli.md).

const ID = ['ID'] as const;
const path = (ctx: Context) => `/v1/keys/${encodeURIComponent(ctx.p.positionals[0]!)}`;

const KEY_FIELDS = {
  description: { value: 'TEXT', help: 'what the key is for' },
  scopes: { value: 'a,b', help: 'scopes or presets from the catalog (GET /v1/scopes)' },
  apis: { value: 'a,b', help: 'the APIs the key may call (default: all)' },
  plan: { value: 'PLAN', help: 'a configured plan' },
  'rate-limit': { value: 'N/SECONDS[/BURST]', help: "the key's own limit, replacing its plan's: 100/60 is 100 requests a minute" },
  quota: { value: 'LIMIT/PERIOD', help: 'units the key may spend per hour, day or month (UTC), or once: 10000/month, 1000/once; replaces its credits' },
  credits: { value: 'N[/REFILL/EVERY]', help: 'a balance of N units, topped up by hand (500), or set to REFILL each day or month (500/100/day); replaces its quota' },
  'quota-mode': { value: 'MODE', help: 'enforce (default) or shadow: counted and reported, never refused; with --quota or --credits' },
  'refund-5xx': { help: 'give the units back when the answer is a 5xx; with --quota or --credits' },
  expires: { value: 'WHEN', help: 'RFC 3339 (2027-01-31T00:00:00Z) or a span from now: 30d, 90d, 1y' },
  'ip-allowlist': { value: 'CIDR,…', help: 'addresses or CIDRs the key may be used from' },
  meta: { value: 'KEY=VALUE', help: 'a metadata entry (string value)', multiple: true },
} as const;

const NULLABLE = ['description', 'apis', 'plan', 'rate_limit', 'quota', 'credits', 'ip_allowlist', 'expires_at'] as const;

/** The body fields shared by create and edit, from their options. */
function keyFields(ctx: Context): Record<string, unknown> {
  const p = ctx.p;
  const body: Record<string, unknown> = {
    description: str(p, 'description'),
    scopes: list(p, 'scopes'),
    apis: list(p, 'apis'),
    plan: str(p, 'plan'),
    rate_limit: rateLimit(p, 'rate-limit'),
    expires_at: expires(p, 'expires', ctx.now()),
    ip_allowlist: list(p, 'ip-allowlist'),
    meta: meta(p, 'meta'),
  };
  if (body.plan !== undefined && body.rate_limit !== undefined) {
    throw new UsageError("give --plan or --rate-limit, not both: a key's rate limit replaces its plan's limits");
  }
  return { ...body, ...quotaFields(p) };
}

/** `quota` or `credits` from --quota / --credits, with --quota-mode and --refund-5xx. */
function quotaFields(p: Context['p']): { quota?: unknown; credits?: unknown } {
  const q = quota(p, 'quota');
  const c = credits(p, 'credits');
  const mode = oneOf(p, 'quota-mode', ['enforce', 'shadow']);
  const refund = p.values['refund-5xx'] === true;
  if (q !== undefined && c !== undefined) throw new UsageError('give --quota or --credits, not both: a key has one balance, counted one way');
  if (q === undefined && c === undefined) {
    if (mode !== undefined || refund) throw new UsageError('--quota-mode and --refund-5xx go with the --quota or --credits they apply to; give it too (keys show prints the current one)');
    return {};
  }
  const how = { mode: mode ?? 'enforce', refund_on: refund ? ['5xx'] : [] };
  return q !== undefined ? { quota: { ...q, ...how } } : { credits: { ...c, ...how } };
}

const PER: Record<string, string> = { hour: 'an hour', day: 'a day', month: 'a month' };

/** A key's own quota or credits in words; its plan's when it has neither but a balance. */
function quotaLine(k: any): string {
  const q = k.quota;
  const c = k.credits;
  const how = (x: any) => `${x.mode === 'shadow' ? ', shadow: never refused' : ''}${x.refund_on?.includes('5xx') ? ', refund on 5xx' : ''}`;
  if (q) return `${text(q.limit)} ${q.refill && q.period ? text(PER[q.period] ?? q.period) : 'once, never refilled'}${how(q)}`;
  if (c) return `credits: ${text(c.remaining)} to start, ${c.refill ? `refilled to ${text(c.refill.amount)} each ${text(c.refill.every)}` : 'topped up by hand'}${how(c)}`;
  // An edit's answer has no balance: whether the plan has a quota is not known from it.
  if (!('balance' in k)) return "none of its own (its plan's, if it has one)";
  return k.balance ? `its plan's (${text(k.plan ?? 'default')})` : '-';
}

/** What is left of a key's quota or credits, and when it refills. */
function balanceLine(b: any, now: number): string {
  if (!b) return '-';
  return `${text(b.remaining)} left, ${b.refills_at === null ? 'never refills' : `refills ${when(b.refills_at, now)}`}`;
}

const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function status(k: any): string {
  return k.status === 'active' && k.grace_ends_at !== null ? 'active (grace)' : text(k.status);
}

function printKeys(ctx: Context, keys: any[]): void {
  const now = ctx.now();
  ctx.out(
    table(
      ['ID', 'NAME', 'KEY', 'ENVIRONMENT', 'STATUS', 'SCOPES', 'CREATED', 'LAST USED'],
      keys.map((k) => [text(k.id), text(k.name), text(k.masked), text(k.environment), status(k), text(k.scopes), ago(k.created_at, now), ago(k.last_used_at, now)]),
    ),
  );
}

function printKey(ctx: Context, k: any): void {
  const now = ctx.now();
  const rl = k.rate_limit;
  ctx.out(
    fields([
      ['id', text(k.id)],
      ['name', text(k.name)],
      ['description', text(k.description)],
      ['key', text(k.masked)],
      ['environment', text(k.environment)],
      ['status', status(k)],
      ['scopes', text(k.scopes)],
      ['apis', k.apis === null ? 'all' : text(k.apis)],
      ['plan', text(k.plan)],
      ['rate limit', rl ? `${rl.limit} per ${rl.window_seconds} s${rl.burst === null ? '' : `, burst ${rl.burst}`}` : "-"],
      ['quota', quotaLine(k)],
      ...('balance' in k ? [['balance', balanceLine(k.balance, now)] as const] : []),
      ['ip allowlist', k.ip_allowlist === null ? 'any' : text(k.ip_allowlist)],
      ['application', text(k.application)],
      ['policy', text(k.policy)],
      ['meta', Object.keys(k.meta ?? {}).length ? text(k.meta) : '-'],
      ['created', `${when(k.created_at, now)} by ${text(k.created_by)}`],
      ['updated', when(k.updated_at, now)],
      ['not before', when(k.not_before, now)],
      ['expires', when(k.expires_at, now)],
      ['last used', k.last_used_at === null ? 'never' : when(k.last_used_at, now)],
      ...(k.suspended_at !== null ? [['suspended', `${when(k.suspended_at, now)}: ${text(k.suspended_reason)}`] as const] : []),
      ...(k.revoked_at !== null ? [['revoked', `${when(k.revoked_at, now)}: ${text(k.revoked_reason)}`] as const] : []),
      ...(k.replaces !== null ? [['replaces', text(k.replaces)] as const] : []),
      ...(k.replaced_by !== null ? [['replaced by', text(k.replaced_by)] as const] : []),
      ...(k.grace_ends_at !== null ? [['grace ends', when(k.grace_ends_at, now)] as const] : []),
      ...(k.rotate_at !== null ? [['rotates', when(k.rotate_at, now)] as const] : []),
      ['requests', `${k.usage?.total_requests ?? 0} (${k.usage?.error_count ?? 0} errors)`],
    ]),
  );
}

/** create and regenerate: the key, this once, and the warning that it will not be shown again. */
function printIssued(ctx: Context, k: any, what: string): void {
  ctx.out(`${what} ${text(k.id)} "${text(k.name)}" (${text(k.environment)}, ${text(k.status)})\n`);
  ctx.out(`key: ${clean(k.key)}\n`);
  ctx.err('warning: this is the only time the key is shown; store it now (Keygate keeps only its hash)\n');
  // The example carries the key too; once on the screen is enough.
  if (typeof k.curl === 'string') ctx.out(`try it (<key>: the key above):\n  ${clean(k.curl.replaceAll(k.key, '<key>'))}\n`);
}

const STATUSES = ['pending', 'active', 'suspended', 'expired', 'revoked'] as const;

export const KEY_COMMANDS: readonly Runnable[] = [
  {
    name: 'keys create',
    summary: 'Issues a key. Prints the key once: Keygate keeps only its hash.',
    options: {
      name: { value: 'NAME', help: 'a name people recognise', required: true },
      environment: { value: 'ENV', help: 'a configured environment (default: the first)' },
      ...KEY_FIELDS,
      'not-before': { value: 'TIME', help: 'RFC 3339: the key works from then on' },
      application: { value: 'APP_ID', help: 'the application that owns the key (app_…)' },
      policy: { value: 'POLICY', help: 'a configured policy: its fields are the defaults' },
    },
    examples: [
      'keygate keys create --name ci --environment production --scopes read_campaigns,send_email --json',
      'keygate keys create --name partner --plan pro --expires 90d --ip-allowlist 203.0.113.0/24 --meta owner=ops',
      'keygate keys create --name metered --quota 10000/month --quota-mode shadow',
    ],
    async run(ctx) {
      const p = ctx.p;
      const body = defined({
        name: str(p, 'name'),
        environment: str(p, 'environment'),
        ...keyFields(ctx),
        not_before: time(p, 'not-before'),
        application: str(p, 'application'),
        policy: str(p, 'policy'),
      });
      const k = await ctx.client.call('POST', '/v1/keys', { body });
      if (p.json) printJson(ctx, k);
      else printIssued(ctx, k, 'created');
    },
  },
  {
    name: 'keys list',
    summary: 'Lists keys, newest first unless --sort/--order say otherwise, a page at a time (--all: every page).',
    options: {
      status: { value: 'STATUS', help: STATUSES.join('|') },
      environment: { value: 'ENV', help: 'keys of this environment' },
      application: { value: 'APP_ID', help: 'keys of this application' },
      scope: { value: 'SCOPE', help: 'keys holding this scope' },
      q: { value: 'TEXT', help: 'a part of the name, or an exact id' },
      sort: { value: 'FIELD', help: 'created_at|last_used_at|name' },
      order: { value: 'ORDER', help: 'asc|desc' },
      limit: { value: 'N', help: 'keys a page, 1 to 100 (default 20)' },
      cursor: { value: 'CURSOR', help: 'the next page, as the previous one said' },
      all: { help: 'follow the cursors to the last page' },
    },
    examples: ['keygate keys list --environment production --status active', 'keygate keys list --scope send_email --all --json'],
    async run(ctx) {
      const p = ctx.p;
      if (p.values.all === true && p.values.cursor !== undefined) throw new UsageError('give --all or --cursor, not both');
      const page = await pages(ctx, '/v1/keys', {
        status: oneOf(p, 'status', STATUSES),
        environment: str(p, 'environment'),
        application: str(p, 'application'),
        scope: str(p, 'scope'),
        q: str(p, 'q'),
        sort: oneOf(p, 'sort', ['created_at', 'last_used_at', 'name']),
        order: oneOf(p, 'order', ['asc', 'desc']),
        limit: int(p, 'limit', 1, 100),
        cursor: str(p, 'cursor'),
      });
      if (p.json) return printJson(ctx, page);
      if (page.data.length === 0) return ctx.out('no keys\n');
      printKeys(ctx, page.data);
      more(ctx, page.next_cursor, 'keygate keys list …');
    },
  },
  {
    name: 'keys show',
    summary: 'Shows one key: its record, never the key itself.',
    args: ID,
    options: {},
    examples: ['keygate keys show key_3kTq8Zr2mW9xYp1c'],
    async run(ctx) {
      const k = await ctx.client.call('GET', path(ctx));
      if (ctx.p.json) printJson(ctx, k);
      else printKey(ctx, k);
    },
  },
  {
    name: 'keys edit',
    summary: 'Changes the fields given and leaves the others; the gateways apply it on the next request.',
    args: ID,
    options: {
      name: { value: 'NAME', help: 'a new name' },
      ...KEY_FIELDS,
      clear: { value: 'FIELD,…', help: `set to none: ${NULLABLE.join(', ')} (apis: all; ip_allowlist: any address)` },
    },
    examples: [
      'keygate keys edit key_3kTq8Zr2mW9xYp1c --scopes read_campaigns --expires 2027-01-31T00:00:00Z',
      'keygate keys edit key_3kTq8Zr2mW9xYp1c --clear expires_at,ip_allowlist',
      'keygate keys edit key_3kTq8Zr2mW9xYp1c --credits 500/100/day --refund-5xx',
    ],
    async run(ctx) {
      const p = ctx.p;
      const body: Record<string, unknown> = defined({ name: str(p, 'name'), ...keyFields(ctx) });
      for (const field of list(p, 'clear') ?? []) {
        if (!(NULLABLE as readonly string[]).includes(field)) throw new UsageError(`--clear takes: ${NULLABLE.join(', ')}; got "${field}"`);
        if (body[field] !== undefined) throw new UsageError(`${field} is both given and cleared`);
        body[field] = null;
      }
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give at least one field');
      const k = await ctx.client.call('PATCH', path(ctx), { body });
      if (p.json) printJson(ctx, k);
      else {
        ctx.out(`updated ${text(k.id)}\n`);
        printKey(ctx, k);
      }
    },
  },
  {
    name: 'keys regenerate',
    summary: "Issues a successor with the same configuration; the old key is revoked now, or keeps working for --grace. Prints the new key once.",
    args: ID,
    options: { grace: { value: 'DURATION', help: "how long the old key keeps working: seconds, or 1h, 7d (default: the policy's, else 0; at most 30d)" } },
    examples: ['keygate keys regenerate key_3kTq8Zr2mW9xYp1c --grace 7d'],
    async run(ctx) {
      const grace = seconds(ctx.p, 'grace');
      const k = await ctx.client.call('POST', `${path(ctx)}/regenerate`, { body: defined({ grace_period_seconds: grace }) });
      if (ctx.p.json) printJson(ctx, k);
      else printIssued(ctx, k, `regenerated ${text(ctx.p.positionals[0])} as`);
    },
  },
  {
    name: 'keys credits',
    summary: "Sets (--set) or tops up (--add) the balance of the key's quota or credits, at once for every gateway; audited as key.credits_changed.",
    args: ID,
    options: {
      set: { value: 'N', help: 'the balance to set, in units (0 or more)' },
      add: { value: 'N', help: 'units to add to the balance (1 or more)' },
    },
    notes: 'The key needs a quota or credits, its own or its plan\'s (keys edit --quota / --credits). The next refill sets the balance to its refill amount, whatever was added.',
    examples: ['keygate keys credits key_3kTq8Zr2mW9xYp1c --add 1000', 'keygate keys credits key_3kTq8Zr2mW9xYp1c --set 0 --json'],
    async run(ctx) {
      const set = int(ctx.p, 'set', 0, 1e12);
      const add = int(ctx.p, 'add', 1, 1e12);
      if ((set === undefined) === (add === undefined)) throw new UsageError('give --set N or --add N, one of them');
      const k = await ctx.client.call('POST', `${path(ctx)}/credits`, { body: set !== undefined ? { set } : { add } });
      if (ctx.p.json) printJson(ctx, k);
      else ctx.out(`balance of ${text(k.id)} "${text(k.name)}": ${balanceLine(k.balance, ctx.now())}\n`);
    },
  },
  ...(['suspend', 'reactivate', 'revoke'] as const).map(
    (verb): Runnable => ({
      name: `keys ${verb}`,
      summary: {
        suspend: 'Stops the key until it is reactivated.',
        reactivate: "Lifts the key's own suspension (one through its application stays until the application is reactivated).",
        revoke: 'Revokes the key for good: the very next request with it is refused.',
      }[verb],
      args: ID,
      options: verb === 'reactivate' ? {} : { reason: { value: 'TEXT', help: 'why; shown on the record and in the audit log' } },
      examples: [`keygate keys ${verb} key_3kTq8Zr2mW9xYp1c${verb === 'reactivate' ? '' : ` --reason "${verb === 'revoke' ? 'leaked in a CI log' : 'unpaid invoice'}"`}`],
      async run(ctx) {
        const body = verb === 'reactivate' ? undefined : defined({ reason: str(ctx.p, 'reason') });
        const k = await ctx.client.call('POST', `${path(ctx)}/${verb}`, { body });
        if (ctx.p.json) printJson(ctx, k);
        else ctx.out(`${{ suspend: 'suspended', reactivate: 'reactivated', revoke: 'revoked' }[verb]} ${text(k.id)} "${text(k.name)}": ${status(k)}\n`);
      },
    }),
  ),
  {
    name: 'keys check-leak',
    summary:
      'Reports a key found where it should not be (a log, a paste, a repository): a live key gets leaks.action (suspend by default) and a key.leaked alert. ' +
      'Give KEY as - to read it from standard input, which keeps it out of shell history and ps.',
    args: ['KEY'],
    options: {
      source: { value: 'TEXT', help: 'where it was found (default: operator)' },
      'found-at': { value: 'URL', help: 'the address it was found at' },
    },
    examples: ['keygate keys check-leak - --source "CI log" --found-at https://ci.example.com/runs/42 < found.txt'],
    async run(ctx) {
      const given = ctx.p.positionals[0]!;
      const key = (given === '-' ? await readAll(ctx.stdin) : given).trim();
      if (key === '') throw new UsageError('no key given');
      const r = await ctx.client.call('POST', '/v1/keys/leaked', { body: defined({ key, source: str(ctx.p, 'source'), url: str(ctx.p, 'found-at') }) });
      if (ctx.p.json) printJson(ctx, r);
      else if (r.label === 'true_positive') ctx.out(`leaked: ${text(r.key.id)} "${text(r.key.name)}" (${text(r.key.masked)}): ${text(r.action)}; now ${status(r.key)}\n`);
      else ctx.out('not a live key of this Keygate (or not one this token may see): nothing done\n');
    },
  },
];
