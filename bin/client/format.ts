// Human output of the CLI: aligned tables, relative times, values made safe for a terminal.

/**
 * A value from the API as one line of terminal text: control characters (escape sequences that
 * could move the cursor, recolour or retitle the terminal, line breaks that forge rows) shown as
 * `\xNN` escapes. Names, descriptions and meta are whatever the API was given.
 */
export function clean(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A wire value as table text: `-` for null, lists comma-joined, objects as JSON. */
export function text(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.length === 0 ? '-' : clean(v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(','));
  if (typeof v === 'object') return clean(JSON.stringify(v));
  return clean(String(v));
}

/** Rows under a header, each column as wide as its widest cell, two spaces between columns. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** `label: value` lines, the values aligned. */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join('\n') + '\n';
}

const UNITS: readonly [number, string][] = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'min'],
  [1_000, 's'],
];

/**
 * An RFC 3339 time relative to `now`: `2 h ago`, `in 30 d`, `just now`; `never` for null.
 * Past 60 days, the date itself.
 */
export function ago(iso: string | null | undefined, now: number, never = 'never'): string {
  if (iso === null || iso === undefined) return never;
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return clean(iso);
  const d = now - at;
  const abs = Math.abs(d);
  if (abs < 1_000) return 'just now';
  if (abs >= 60 * 86_400_000) return iso.slice(0, 10);
  const [size, unit] = UNITS.find(([s]) => abs >= s)!;
  const n = Math.floor(abs / size);
  return d > 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

/** An RFC 3339 time with its relative form: `2026-06-01T12:00:00.000Z (2 h ago)`; `-` for null. */
export function when(iso: string | null | undefined, now: number): string {
  return iso === null || iso === undefined ? '-' : `${clean(iso)} (${ago(iso, now)})`;
}
