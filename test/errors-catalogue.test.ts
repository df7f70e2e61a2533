import { readFileSync } from 'node:fs';
import t from 'tap';
import { DEFAULT_DOC_BASE_URL, errorDocUrls, ERRORS, INVALID_TOKEN_REASONS, type ErrorCode } from '../core/errors.js';
import { ERROR_DOC, ERROR_DOC_ANCHORS, ERROR_DOC_SECTIONS, slug } from './lib/error-docs.js';

const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('README lists every error code with its status, and nothing else', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = [...readme.matchAll(/^\| (\d{3}) \| `([a-z_]+)` \|/gm)].map((m) => [m[2]!, Number(m[1])] as const);
  const documented = new Map(rows);
  for (const [code, def] of Object.entries(ERRORS)) {
    t.equal(documented.get(code), def.status, `${code} documented as ${def.status}`);
  }
  t.same([...documented.keys()].sort(), Object.keys(ERRORS).sort(), 'no stale rows');
});

t.test('docs/errors.md has a section per code, headed by the code, with its status', async (t) => {
  for (const code of codes) {
    const section = ERROR_DOC_SECTIONS.get(code);
    t.ok(section, `## ${code}`);
    t.equal(section?.status, ERRORS[code].status, `${code}: **${ERRORS[code].status}**`);
    t.ok(ERROR_DOC_ANCHORS.has(code), `#${code} is an anchor`);
  }
  t.same([...ERROR_DOC_SECTIONS.keys()].sort(), [...codes].sort(), 'no section for a code that does not exist');
});

t.test('each section says when, what the key holder (or admin caller) can do, and what the operator can', async (t) => {
  for (const [code, section] of ERROR_DOC_SECTIONS) {
    t.match(section.text, /^\*\*When\.\*\* \S/m, `${code}: when`);
    t.match(section.text, /^\*\*(Key holder|Caller)\.\*\* \S/m, `${code}: the reader of the body`);
    t.match(section.text, /^\*\*Operator\.\*\* \S/m, `${code}: the operator`);
  }
});

t.test('the index lists every code with its status and links to its section', async (t) => {
  const rows = new Map([...ERROR_DOC.matchAll(/^\| (\d{3}) \| \[([a-z_]+)\]\(#([a-z_]+)\) \|/gm)].map((m) => [m[2]!, { status: Number(m[1]), anchor: m[3]! }]));
  for (const code of codes) t.same(rows.get(code), { status: ERRORS[code].status, anchor: code }, code);
  t.equal(rows.size, codes.length, 'no stale rows');
});

t.test('every link inside docs/errors.md points at an anchor it has', async (t) => {
  const links = [...ERROR_DOC.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
  t.ok(links.length >= codes.length);
  for (const anchor of links) t.ok(ERROR_DOC_ANCHORS.has(anchor), `#${anchor}`);
  t.equal(slug('insufficient_permissions'), 'insufficient_permissions', 'a code is its own anchor');
});

t.test('every invalid_token reason is in the section’s table', async (t) => {
  const section = ERROR_DOC_SECTIONS.get('invalid_token')!.text;
  for (const reason of Object.keys(INVALID_TOKEN_REASONS)) t.match(section, new RegExp(`^\\| \`${reason}\` \\|`, 'm'), reason);
});

t.test('a reason’s message fits a WebSocket close frame (RFC 6455 §5.5: 123 bytes)', async (t) => {
  for (const [reason, message] of Object.entries(INVALID_TOKEN_REASONS)) t.ok(Buffer.byteLength(message) <= 123, reason);
});

t.test('messages are sentences for the reader: no settings page, an action or a cause', async (t) => {
  for (const [code, { message }] of Object.entries(ERRORS)) {
    t.match(message, /^[A-Z].*\.$/, `${code}: a sentence`);
    t.notMatch(message, /settings/i, `${code}: no settings page to send the reader to`);
  }
  t.match(ERRORS.insufficient_permissions.message, /ask the API's owner/);
});

t.test('errorDocUrls: each code under the base, as its anchor; the default base is this page', async (t) => {
  t.equal(DEFAULT_DOC_BASE_URL, 'docs/errors.md');
  const urls = errorDocUrls('https://docs.example.com/errors');
  for (const code of codes) t.equal(urls[code], `https://docs.example.com/errors#${code}`);
  t.ok(Object.isFrozen(urls));
});
