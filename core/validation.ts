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
