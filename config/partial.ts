import { z } from 'zod';
import { closest } from '../core/validation.js';

/** Keys and array indices from the root of a document. */
export type Path = readonly PropertyKey[];

export interface Problem {
  /** Where in the input, as written (not shifted by refused parts dropped before it). */
  path: Path;
  message: string;
  /** The problem is the key itself (unknown, misspelt, not a valid name), not its value. */
  atKey?: boolean;
}

/** What {@link parsePartially} makes of an input the schema refuses in places. */
export interface PartialParse<T> {
  /**
   * Every part that parsed. A refused part is dropped: an array loses the element, an object
   * the key, and its default stands in; a required field takes a stand-in value the schema
   * accepts, and where there is none (an object, a type tag) its parent goes too. A
   * misspelt key whose meant name is not given too is read under that name.
   */
  value: T;
  problems: Problem[];
  /** The input path of a path in `value`. */
  origin(path: Path): PropertyKey[];
  /** Whether the part at `path` of `value` is what the input gave, not a default standing in for a refused part. */
  known(path: Path): boolean;
}

const MAX_ROUNDS = 100;

/**
 * Parses `input` with `schema`; where it refuses a part, reports the problem, drops the part
 * and parses again until the rest passes, so rules across fields can run on every part that
 * parsed. What follows from a problem already reported (the "is required" of a dropped or
 * misspelt key, a refinement of the object around it) is not reported again.
 *
 * `unreadable` names input paths already reported (an unset environment variable): a schema
 * problem there is one of theirs, and they are never {@link PartialParse.known}.
 */
export function parsePartially<S extends z.ZodType>(schema: S, input: unknown, unreadable: readonly Path[] = []): PartialParse<z.output<S>> {
  const doc = new Working(structuredClone(input));
  const gone: Path[] = [...unreadable];
  const problems: Problem[] = [];
  const stoodIn = new Set<string>();
  const origin = (path: Path) => doc.origin(path);
  const known = (path: Path) => {
    const at = doc.origin(path);
    return !gone.some((g) => startsWith(at, g));
  };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const result = schema.safeParse(doc.root);
    if (result.success) return { value: result.data, problems, origin, known };
    const issues = flatten(result.error.issues, []);
    // Misspelt keys first: the "is required" of the name they meant is theirs.
    const renames = new Map<string, { object: Path; from: string; to: string }>();
    const drops: Path[] = [];
    const marked: Path[] = [];
    for (const issue of issues) {
      if (issue.unknownKey === undefined) continue;
      const path = [...issue.path, issue.unknownKey];
      const meant = closest(issue.unknownKey, keysAt(schema, issue.path, doc.root));
      problems.push({ path: doc.origin(path), message: meant === undefined ? 'unknown key' : `unknown key; did you mean "${meant}"?`, atKey: true });
      const target = [...issue.path, meant ?? ''];
      const id = JSON.stringify(target);
      if (meant !== undefined && doc.get(target) === undefined && !renames.has(id)) {
        renames.set(id, { object: issue.path, from: issue.unknownKey, to: meant });
        marked.push(target);
      } else {
        drops.push(path);
      }
    }
    for (const issue of issues) {
      if (issue.unknownKey !== undefined) continue;
      // At or above a key about to be read under its meant name: judged again next round.
      if (marked.some((m) => startsWith(m, issue.path))) continue;
      const at = doc.origin(issue.path);
      const followsOn = gone.some((g) => startsWith(at, g) || startsWith(g, at));
      if (!followsOn) problems.push({ path: at, message: issue.message, ...(issue.atKey ? { atKey: true } : {}) });
      drops.push(issue.path);
    }
    // A required field already refused gets a stand-in, so the parts beside it still reach
    // the cross-field rules (which never read it: it is not known); failing that, or for an
    // array element, its parent goes too.
    const targets: Path[] = [];
    const standIns: { path: Path; value: unknown }[] = [];
    for (const path of drops) {
      let p = path;
      while (p.length > 0 && doc.get(p) === undefined) {
        const id = JSON.stringify(doc.origin(p));
        const parent = doc.get(p.slice(0, -1));
        const inObject = parent !== null && typeof parent === 'object' && !Array.isArray(parent);
        const value = stoodIn.has(id) || !inObject ? undefined : standIn(schema, p, doc.root);
        if (value !== undefined) {
          stoodIn.add(id);
          standIns.push({ path: p, value });
          break;
        }
        p = p.slice(0, -1);
      }
      if (doc.get(p) !== undefined || p.length === 0) targets.push(p);
    }
    for (const t of [...targets, ...standIns.map((x) => x.path)]) gone.push(doc.origin(t));
    for (const r of renames.values()) doc.rename(r.object, r.from, r.to);
    for (const { path, value } of standIns) (doc.get(path.slice(0, -1)) as Record<PropertyKey, unknown>)[path.at(-1)!] = value;
    doc.remove(targets);
  }
  throw new Error('the configuration could not be read: no part of it parsed');
}

/** The input being cut down, with what each of its paths was in the original. */
class Working {
  root: unknown;
  /** Per array with elements removed: the original index of each remaining element. */
  readonly #indices = new WeakMap<unknown[], number[]>();
  /** Per object with keys renamed: the name written for each meant name. */
  readonly #renamed = new WeakMap<object, Map<string, string>>();

  constructor(root: unknown) {
    this.root = root;
  }

  get(path: Path): unknown {
    let node = this.root;
    for (const seg of path) {
      if (node === null || typeof node !== 'object') return undefined;
      node = (node as Record<PropertyKey, unknown>)[seg];
    }
    return node;
  }

  origin(path: Path): PropertyKey[] {
    const out: PropertyKey[] = [];
    let node = this.root;
    for (const seg of path) {
      if (Array.isArray(node) && typeof seg === 'number') out.push(this.#indices.get(node)?.[seg] ?? seg);
      else if (node !== null && typeof node === 'object' && typeof seg === 'string') out.push(this.#renamed.get(node)?.get(seg) ?? seg);
      else out.push(seg);
      node = node !== null && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[seg] : undefined;
    }
    return out;
  }

  rename(object: Path, from: string, to: string): void {
    const o = this.get(object) as Record<string, unknown>;
    o[to] = o[from];
    delete o[from];
    let names = this.#renamed.get(o);
    if (!names) this.#renamed.set(o, (names = new Map()));
    names.set(to, from);
  }

  /** Removes every path in `paths` (resolved before any is removed, so indices hold). */
  remove(paths: readonly Path[]): void {
    if (paths.some((p) => p.length === 0)) {
      this.root = {};
      return;
    }
    const byParent = new Map<object, Set<PropertyKey>>();
    for (const p of paths) {
      const parent = this.get(p.slice(0, -1)) as object;
      let keys = byParent.get(parent);
      if (!keys) byParent.set(parent, (keys = new Set()));
      keys.add(p.at(-1)!);
    }
    for (const [parent, keys] of byParent) {
      if (!Array.isArray(parent)) {
        for (const k of keys) delete (parent as Record<PropertyKey, unknown>)[k];
        continue;
      }
      let indices = this.#indices.get(parent);
      if (!indices) this.#indices.set(parent, (indices = parent.map((_, i) => i)));
      for (const i of [...keys].map(Number).sort((a, b) => b - a)) {
        parent.splice(i, 1);
        indices.splice(i, 1);
      }
    }
  }
}

interface Flat {
  path: Path;
  message: string;
  unknownKey?: string;
  atKey?: boolean;
}

/** One entry per problem: unknown keys each on its own, a union's problems from the one branch the value's type fits. */
function flatten(issues: readonly z.core.$ZodIssue[], base: Path): Flat[] {
  const out: Flat[] = [];
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path, message: 'unknown key', unknownKey: key });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const fitting = issue.errors.filter((branch) => !branch.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value')));
      if (fitting.length === 1) out.push(...flatten(fitting[0]!, path));
      else out.push({ path, message: issue.message });
    } else if (issue.code === 'invalid_key') {
      out.push({ path, message: `the name ${issue.issues[0]?.message ?? 'is not valid'}`, atKey: true });
    } else if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
      out.push({ path, message: 'is required' });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

/** The keys the schema allows in the object at `path` of `root`. */
export function keysAt(schema: z.ZodType, path: Path, root: unknown): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(schema, path, root)) if (s instanceof z.ZodObject) for (const k of Object.keys(s.shape)) keys.add(k);
  return [...keys];
}

/** The schemas that may judge the value at `path` of `root`. */
function schemasAt(schema: z.ZodType, path: Path, root: unknown): z.ZodType[] {
  let data = root;
  let schemas = expand(schema, data);
  for (const seg of path) {
    data = data !== null && typeof data === 'object' ? (data as Record<PropertyKey, unknown>)[seg] : undefined;
    const next: z.ZodType[] = [];
    for (const s of schemas) {
      if (s instanceof z.ZodObject && typeof seg === 'string' && Object.hasOwn(s.shape, seg)) next.push(s.shape[seg] as z.ZodType);
      else if (s instanceof z.ZodArray && typeof seg === 'number') next.push(s.element as z.ZodType);
      else if (s instanceof z.ZodRecord) next.push(s.valueType as z.ZodType);
    }
    schemas = next.flatMap((s) => expand(s, data));
  }
  return schemas;
}

const STAND_INS: readonly unknown[] = [1, true, '/', 'http://127.0.0.1', 'a'.repeat(16)];

/**
 * A value the required field at `path` accepts, standing in for the refused one; none for a
 * field that says which kind of object holds it (a literal: other values would read the
 * object's other fields differently), nor for one taking an object or array.
 */
function standIn(schema: z.ZodType, path: Path, root: unknown): unknown {
  const key = path.at(-1);
  if (typeof key !== 'string') return undefined;
  for (const parent of schemasAt(schema, path.slice(0, -1), root)) {
    if (!(parent instanceof z.ZodObject) || !Object.hasOwn(parent.shape, key)) continue;
    const field = parent.shape[key] as z.ZodType;
    const inner = expand(field, undefined);
    if (inner.some((s) => s instanceof z.ZodLiteral)) return undefined;
    const options = inner.flatMap((s) => (s instanceof z.ZodEnum ? (s.options as unknown[]) : []));
    return [...STAND_INS, ...options].find((v) => field.safeParse(v).success);
  }
  return undefined;
}

/** The schemas a value may meet behind defaults, pipes and unions (of a union, the objects whose literal fields the value has). */
function expand(s: z.ZodType, data: unknown): z.ZodType[] {
  if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodNullable || s instanceof z.ZodOptional) {
    return expand(s.unwrap() as z.ZodType, data);
  }
  if (s instanceof z.ZodPipe) return [...expand(s.in as z.ZodType, data), ...expand(s.out as z.ZodType, data)];
  if (s instanceof z.ZodUnion || s instanceof z.ZodDiscriminatedUnion) {
    const options = (s.options as z.ZodType[]).flatMap((o) => expand(o, data));
    const fitting = options.filter(
      (o) =>
        o instanceof z.ZodObject &&
        Object.entries(o.shape).every(
          ([k, v]) => !(v instanceof z.ZodLiteral) || (data !== null && typeof data === 'object' && v.values.has((data as Record<string, never>)[k])),
        ),
    );
    return fitting.length > 0 ? fitting : options;
  }
  return [s];
}

/** Whether `path` is `prefix` or lies under it. */
export function startsWith(path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => seg === path[i]);
}
