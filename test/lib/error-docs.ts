import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { DEFAULT_DOC_BASE_URL } from '../../core/errors.js';

/** docs/errors.md as written, and what tests read of it. */
export const ERROR_DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** A heading's anchor as GitHub (and most Markdown renderers) make it. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor the page has: one per heading. */
export const ERROR_DOC_ANCHORS: ReadonlySet<string> = new Set([...ERROR_DOC.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));

export interface CodeSection {
  status: number;
  /** The section's text, heading excluded, up to the next `## `. */
  text: string;
}

/** The `## <code>` sections: every level-2 heading that is a code (lower case and `_`). */
export const ERROR_DOC_SECTIONS: ReadonlyMap<string, CodeSection> = new Map(
  [...ERROR_DOC.matchAll(/^## ([a-z_]+)\n([\s\S]*?)(?=^## |(?![\s\S]))/gm)].map((m) => {
    const status = /^\*\*(\d{3})\*\*/m.exec(m[2]!);
    return [m[1]!, { status: status ? Number(status[1]) : NaN, text: m[2]! }];
  }),
);

/**
 * An error body's `doc_url` is `base#<its code>`, and (for the default base, this page) the
 * anchor is one the page has.
 */
export function assertDocUrl(t: Test, body: { error?: unknown; doc_url?: unknown } | undefined, base = DEFAULT_DOC_BASE_URL, label = ''): void {
  const p = label ? `${label}: ` : '';
  t.equal(body?.doc_url, `${base}#${String(body?.error)}`, `${p}doc_url is ${base}#<code>`);
  const anchor = String(body?.doc_url ?? '').split('#')[1] ?? '';
  t.ok(ERROR_DOC_ANCHORS.has(anchor), `${p}docs/errors.md has the anchor #${anchor}`);
}
