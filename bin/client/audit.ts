import { AUDIT_ACTIONS } from '../../core/audit.js';
import { int, oneOf, str, time } from './args.js';
import { more, pages, printJson, type Runnable } from './command.js';
import { UsageError } from './errors.js';
import { ago, table, text } from './format.js';

// `keygate audit`: who did what to which key or application (README, "Admin API"; docs/cli.md).

export const AUDIT_COMMAND: Runnable = {
  name: 'audit',
  summary: 'Reads the audit log, newest first, a page at a time (--all: every page).',
  options: {
    actor: { value: 'NAME', help: 'entries of this admin token (its name) or scheduler' },
    action: { value: 'ACTION', help: AUDIT_ACTIONS.join('|') },
    target: { value: 'ID', help: 'entries about this key (key_…) or application (app_…)' },
    from: { value: 'TIME', help: 'entries at or after this RFC 3339 time' },
    to: { value: 'TIME', help: 'entries before this RFC 3339 time' },
    limit: { value: 'N', help: 'entries a page, 1 to 100 (default 50)' },
    cursor: { value: 'CURSOR', help: 'the next page, as the previous one said' },
    all: { help: 'follow the cursors to the last page' },
  },
  examples: ['keygate audit --target key_3kTq8Zr2mW9xYp1c', 'keygate audit --actor ops --action key.revoked --limit 10 --json'],
  async run(ctx) {
    const p = ctx.p;
    if (p.values.all === true && p.values.cursor !== undefined) throw new UsageError('give --all or --cursor, not both');
    const target = str(p, 'target');
    const from = time(p, 'from');
    const to = time(p, 'to');
    if (from !== undefined && to !== undefined && Date.parse(from) >= Date.parse(to)) throw new UsageError('--to must be after --from');
    const page = await pages(ctx, '/v1/audit', {
      actor: str(p, 'actor'),
      action: oneOf(p, 'action', AUDIT_ACTIONS),
      // An application's id starts app_; anything else is taken for a key's.
      ...(target === undefined ? {} : target.startsWith('app_') ? { application: target } : { key_id: target }),
      from,
      to,
      limit: int(p, 'limit', 1, 100),
      cursor: str(p, 'cursor'),
    });
    if (p.json) return printJson(ctx, page);
    if (page.data.length === 0) return ctx.out('no audit entries\n');
    const now = ctx.now();
    ctx.out(
      table(
        ['WHEN', 'ACTOR', 'ROLE', 'ACTION', 'TARGET', 'CHANGED', 'IP'],
        page.data.map((e) => [ago(e.occurred_at, now), text(e.actor), text(e.role), text(e.action), text(e.target_id), text(Object.keys(e.changes ?? {})), text(e.ip || null)]),
      ),
    );
    more(ctx, page.next_cursor, 'keygate audit …');
  },
};
