import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { Path, Problem } from './partial.js';

/** 1-based, as editors count. */
export interface Position {
  line: number;
  column: number;
}

export interface YamlSource {
  /** The document as plain values; undefined when it has syntax errors. */
  value: unknown;
  /** Syntax errors (each with its position, no path), or duplicate keys (the later one is read). */
  problems: (Problem & { position?: Position })[];
  /**
   * Where the part at `path` is written: its value when that is a scalar, else its key (or, for
   * a key the problem is about, the key). A part that is not written points at the nearest
   * enclosing one that is; undefined when not even the first key is.
   */
  locate(path: Path, atKey?: boolean): Position | undefined;
}

/** Reads YAML text, keeping where each part is written. */
export function readYaml(text: string): YamlSource {
  const lines = new LineCounter();
  // Duplicate keys are found below, with their paths; here they would stop the reading.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number): Position => {
    const p = lines.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const locate = (path: Path, atKey = false) => locateIn(doc, path, atKey, at);
  if (doc.errors.length > 0) {
    return { value: undefined, problems: doc.errors.map((e) => ({ path: [], message: e.message, position: at(e.pos[0]) })), locate };
  }
  const problems: YamlSource['problems'] = [];
  duplicates(doc, doc.contents, [], problems, at);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { value: undefined, problems: [{ path: [], message: (err as Error).message }], locate };
  }
  return { value, problems, locate };
}

function duplicates(doc: Document, node: unknown, path: PropertyKey[], out: YamlSource['problems'], at: (offset: number) => Position): void {
  if (isMap(node)) {
    const first = new Map<string, number>();
    for (const pair of node.items) {
      if (!isScalar(pair.key)) continue;
      const key = String(pair.key.value);
      const offset = pair.key.range?.[0] ?? 0;
      const earlier = first.get(key);
      if (earlier !== undefined) {
        out.push({ path: [...path, key], message: `duplicate key; the first is on line ${at(earlier).line}, this later one is read`, atKey: true, position: at(offset) });
      } else {
        first.set(key, offset);
      }
      duplicates(doc, pair.value, [...path, key], out, at);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => duplicates(doc, item, [...path, i], out, at));
  }
}

function locateIn(doc: Document, path: Path, atKey: boolean, at: (offset: number) => Position): Position | undefined {
  let node: unknown = doc.contents;
  let found = path.length === 0 && isNode(node) ? start(node) : undefined;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      // The last of duplicate keys is the one read.
      const pair = node.items.findLast((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const value = pair.value;
      const scalar = isScalar(value) && !!value.range && value.range[0] < value.range[1];
      found = ((i === path.length - 1 && atKey) || !scalar ? start(pair.key as Node) : start(value as Node)) ?? found;
      node = value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!isNode(item)) break;
      found = start(item) ?? found;
      node = item;
    } else {
      break;
    }
  }
  return found === undefined ? undefined : at(found);
}

function isNode(v: unknown): v is Node {
  return v !== null && typeof v === 'object' && 'range' in v;
}

function start(node: Node): number | undefined {
  return node.range?.[0];
}
