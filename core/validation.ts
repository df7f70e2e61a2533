import type { z } from 'zod';

export interface Detail {
  path: string;
  message: string;
}

/** `apis[0].routes[1].path` style, as users write it in YAML and JSON. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** One entry per problem, unknown keys named each on their own path. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[], base: readonly PropertyKey[] = []): Detail[] {
  const out: Detail[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...path, key]), message: 'unknown key' });
    } else if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
      out.push({ path: formatPath(path), message: 'is required' });
    } else {
      out.push({ path: formatPath(path), message: issue.message });
    }
  }
  return out;
}

/**
 * The candidate `word` was most likely meant to be, for a "did you mean" hint: the closest by
 * edit distance (insertions, deletions, substitutions and swaps of two neighbours, ignoring
 * case), if at most a third of the word's letters differ (one in a word of three to five; in
 * a shorter word, only case). Ties go to the candidate listed first.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const limit = word.length < 3 ? 0 : Math.max(1, Math.floor(word.length / 3));
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    if (candidate === word || Math.abs(candidate.length - word.length) >= bestDistance) continue;
    const d = editDistance(w, candidate.toLowerCase(), bestDistance);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** `; did you mean "x"?` when a candidate is close to `word`, else nothing. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const hint = closest(word, candidates);
  return hint === undefined ? '' : `; did you mean "${hint}"?`;
}

/** Optimal string alignment distance between `a` and `b`, or `bound` once it cannot be less. */
function editDistance(a: string, b: string, bound: number): number {
  let before = new Array<number>(b.length + 1).fill(0);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = new Array<number>(b.length + 1).fill(0);
    current[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      current[j] = d;
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin >= bound) return bound;
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/** A configuration problem, with where it is written when the configuration came from YAML text. */
export interface ConfigDetail extends Detail {
  line?: number;
  column?: number;
}

/**
 * `gateway.yaml:14:5: apis[0].upstream: message` (a warning: `…:14:5: warning: apis[0]…`), as
 * compilers write theirs (docs/configuration.md).
 */
export function formatDetail(source: string, d: ConfigDetail, kind?: 'warning'): string {
  const where = d.line === undefined ? source : `${source}:${d.line}:${d.column ?? 1}`;
  return `${where}: ${kind ? `${kind}: ` : ''}${d.path ? `${d.path}: ` : ''}${d.message}`;
}
