import { credits, int, list, meta, oneOf, quota, rateLimit, str } from './args.js';
import { more, pages, printJson, type Context, type Runnable } from './command.js';
import { UsageError } from './errors.js';
import { ago, fields, table, text, when } from './format.js';

// `keygate apps <verb>`: the applications that own keys (README, "Admin API"; docs/cli.md).

const CLEARABLE: readonly string[] = ['description', 'plan', 'rate_limit', 'quota', 'credits'];
const path = (ctx: Context) => `/v1/applications/${encodeURIComponent(ctx.p.positionals[0]!)}`;
const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function printApp(ctx: Context, a: any): void {
  const now = ctx.now();
  ctx.out(
    fields([
      ['id', text(a.id)],
      ['name', text(a.name)],
      ['description', text(a.description)],
      ['status', text(a.status)],
      ['tenant', text(a.tenant)],
      ['meta', Object.keys(a.meta ?? {}).length ? text(a.meta) : '-'],
      ['shared limit', sharedLimit(a)],
      ['shared quota', sharedQuota(a)],
      ...(a.balance !== undefined ? [['balance', balance(a.balance, now)] as const] : []),
      ['created', `${when(a.created_at, now)} by ${text(a.created_by)}`],
      ['updated', when(a.updated_at, now)],
      ...(a.suspended_at !== null ? [['suspended', `${when(a.suspended_at, now)}: ${text(a.suspended_reason)}`] as const] : []),
    ]),
  );
}

/** The limit the application's keys share: its own, else its plan's, else none. */
function sharedLimit(a: any): string {
  const r = a.rate_limit;
  if (r) return `${r.limit} requests / ${r.window_seconds} s${r.burst === null ? '' : ` (burst ${r.burst})`}`;
  return a.plan ? `plan ${text(a.plan)}` : 'none';
}

/** The quota or credits the application's keys share (docs/quotas.md), else none. */
function sharedQuota(a: any): string {
  const q = a.quota;
  if (q) return `${q.limit} units${q.period === null ? ', once' : ` a ${q.period}`}${q.mode === 'shadow' ? ' (shadow)' : ''}`;
  const c = a.credits;
  if (c) return `credits from ${c.remaining}${c.refill ? `, refilled to ${c.refill.amount} each ${c.refill.every}` : ''}${c.mode === 'shadow' ? ' (shadow)' : ''}`;
  return 'none';
}

function balance(b: { remaining: number; refills_at: string | null } | null, now: number): string {
  if (b === null) return '-';
  return `${b.remaining} units left${b.refills_at === null ? '' : `, refilled ${when(b.refills_at, now)}`}`;
}

const LIMIT_OPTIONS = {
  plan: { value: 'PLAN', help: "a configured plan whose limit all the application's keys share" },
  'rate-limit': { value: 'N/SECONDS[/BURST]', help: "a limit of the application's own, shared by its keys: 1000/60 is 1000 requests a minute" },
  quota: { value: 'LIMIT/PERIOD', help: "units its keys share each hour, day or month: 10000/month; 1000/once is never refilled" },
  credits: { value: 'N[/REFILL/EVERY]', help: 'a balance of units its keys share: 500 is topped up only by hand (apps credits), 500/100/day starts at 500 and is set to 100 each day (or month)' },
} as const;

/** `--plan`, `--rate-limit`, `--quota` and `--credits` as the API takes them; contradictory pairs are refused before sending. */
function limitFields(ctx: Context): Record<string, unknown> {
  const body = defined({
    plan: str(ctx.p, 'plan'),
    rate_limit: rateLimit(ctx.p, 'rate-limit'),
    quota: quota(ctx.p, 'quota'),
    credits: credits(ctx.p, 'credits'),
  });
  if (body.plan !== undefined && body.rate_limit !== undefined) {
    throw new UsageError("give --plan or --rate-limit, not both: an application's rate limit replaces its plan's");
  }
  if (body.quota !== undefined && body.credits !== undefined) {
    throw new UsageError('give --quota or --credits, not both: an application has one balance, counted one way');
  }
  return body;
}

export const APP_COMMANDS: readonly Runnable[] = [
  {
    name: 'apps create',
    summary: 'Registers an application; keys name it with --application.',
    options: {
      name: { value: 'NAME', help: 'a name people recognise', required: true },
      description: { value: 'TEXT', help: 'what it is' },
      meta: { value: 'KEY=VALUE', help: 'a metadata entry (string value)', multiple: true },
      ...LIMIT_OPTIONS,
    },
    examples: [
      'keygate apps create --name "Acme mobile" --meta crm=4411',
      'keygate apps create --name "Acme batch" --rate-limit 1000/60',
      'keygate apps create --name "Acme trial" --quota 10000/month',
    ],
    async run(ctx) {
      const body = { ...defined({ name: str(ctx.p, 'name'), description: str(ctx.p, 'description'), meta: meta(ctx.p, 'meta') }), ...limitFields(ctx) };
      const a = await ctx.client.call('POST', '/v1/applications', { body });
      if (ctx.p.json) return printJson(ctx, a);
      ctx.out(`created ${text(a.id)} "${text(a.name)}"\n`);
    },
  },
  {
    name: 'apps list',
    summary: 'Lists applications, newest first, a page at a time (--all: every page).',
    options: {
      status: { value: 'STATUS', help: 'active|suspended' },
      q: { value: 'TEXT', help: 'a part of the name, or an exact id' },
      limit: { value: 'N', help: 'applications a page, 1 to 100 (default 20)' },
      cursor: { value: 'CURSOR', help: 'the next page, as the previous one said' },
      all: { help: 'follow the cursors to the last page' },
    },
    examples: ['keygate apps list --status suspended'],
    async run(ctx) {
      const p = ctx.p;
      if (p.values.all === true && p.values.cursor !== undefined) throw new UsageError('give --all or --cursor, not both');
      const page = await pages(ctx, '/v1/applications', {
        status: oneOf(p, 'status', ['active', 'suspended']),
        q: str(p, 'q'),
        limit: int(p, 'limit', 1, 100),
        cursor: str(p, 'cursor'),
      });
      if (p.json) return printJson(ctx, page);
      if (page.data.length === 0) return ctx.out('no applications\n');
      const now = ctx.now();
      ctx.out(table(['ID', 'NAME', 'STATUS', 'TENANT', 'CREATED'], page.data.map((a) => [text(a.id), text(a.name), text(a.status), text(a.tenant), ago(a.created_at, now)])));
      more(ctx, page.next_cursor, 'keygate apps list …');
    },
  },
  {
    name: 'apps show',
    summary: 'Shows one application.',
    args: ['ID'],
    options: {},
    examples: ['keygate apps show app_8fKq2LmZp0sW1xYt'],
    async run(ctx) {
      const a = await ctx.client.call('GET', path(ctx));
      if (ctx.p.json) printJson(ctx, a);
      else printApp(ctx, a);
    },
  },
  {
    name: 'apps edit',
    summary: 'Changes the fields given and leaves the others.',
    args: ['ID'],
    options: {
      name: { value: 'NAME', help: 'a new name' },
      description: { value: 'TEXT', help: 'a new description' },
      meta: { value: 'KEY=VALUE', help: 'the metadata, whole: replaces the entries there are', multiple: true },
      ...LIMIT_OPTIONS,
      clear: { value: 'FIELD', help: 'set to none: description, plan, rate_limit, quota, credits' },
    },
    examples: [
      'keygate apps edit app_8fKq2LmZp0sW1xYt --name "Acme iOS"',
      'keygate apps edit app_8fKq2LmZp0sW1xYt --plan pro --clear rate_limit',
      'keygate apps edit app_8fKq2LmZp0sW1xYt --quota 500/day',
    ],
    async run(ctx) {
      const p = ctx.p;
      const body: Record<string, unknown> = { ...defined({ name: str(p, 'name'), description: str(p, 'description'), meta: meta(p, 'meta') }), ...limitFields(ctx) };
      for (const field of list(p, 'clear') ?? []) {
        if (!CLEARABLE.includes(field)) throw new UsageError(`--clear takes: ${CLEARABLE.join(', ')}; got "${field}"`);
        if (body[field] !== undefined) throw new UsageError(`${field} is both given and cleared`);
        body[field] = null;
      }
      if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give at least one field');
      const a = await ctx.client.call('PATCH', path(ctx), { body });
      if (ctx.p.json) return printJson(ctx, a);
      ctx.out(`updated ${text(a.id)}\n`);
      printApp(ctx, a);
    },
  },
  {
    name: 'apps credits',
    summary: "Sets (--set) or tops up (--add) the balance of the quota or credits the application's keys share; audited.",
    args: ['ID'],
    options: {
      set: { value: 'N', help: 'the balance to set, in units' },
      add: { value: 'N', help: 'units to add to the balance' },
    },
    examples: ['keygate apps credits app_8fKq2LmZp0sW1xYt --add 5000', 'keygate apps credits app_8fKq2LmZp0sW1xYt --set 0'],
    async run(ctx) {
      const body = defined({ set: int(ctx.p, 'set', 0, 1e12), add: int(ctx.p, 'add', 1, 1e12) });
      if (Object.keys(body).length !== 1) throw new UsageError('give --set or --add, one of them');
      const a = await ctx.client.call('POST', `${path(ctx)}/credits`, { body });
      if (ctx.p.json) return printJson(ctx, a);
      ctx.out(`${text(a.id)}: ${balance(a.balance, ctx.now())}\n`);
    },
  },
  {
    name: 'apps suspend',
    summary: 'Suspends the application and, in the same change, every key it owns that is not revoked.',
    args: ['ID'],
    options: { reason: { value: 'TEXT', help: 'why; shown on the record and in the audit log' } },
    examples: ['keygate apps suspend app_8fKq2LmZp0sW1xYt --reason "contract ended"'],
    async run(ctx) {
      const a = await ctx.client.call('POST', `${path(ctx)}/suspend`, { body: defined({ reason: str(ctx.p, 'reason') }) });
      if (ctx.p.json) return printJson(ctx, a);
      ctx.out(`suspended ${text(a.id)} "${text(a.name)}" and its keys\n`);
    },
  },
  {
    name: 'apps reactivate',
    summary: 'Reactivates the application and the keys suspended through it; keys suspended on their own stay suspended.',
    args: ['ID'],
    options: {},
    examples: ['keygate apps reactivate app_8fKq2LmZp0sW1xYt'],
    async run(ctx) {
      const a = await ctx.client.call('POST', `${path(ctx)}/reactivate`);
      if (ctx.p.json) return printJson(ctx, a);
      ctx.out(`reactivated ${text(a.id)} "${text(a.name)}"\n`);
    },
  },
];
