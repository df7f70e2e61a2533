import type { ScopeCatalog } from './api';

/**
 * The scope catalog (`GET /v1/scopes`) as checkboxes grouped by category, with the presets as
 * one-click buttons that add their scopes. Used by Create and by the key page's permissions editor.
 * A selected scope the catalog no longer lists is shown too, so that it can be removed. Scopes
 * the catalog marks `dangerous` carry a badge that says so, and their descriptions show.
 */
export function ScopePicker({ catalog, scopes, onChange }: { catalog: ScopeCatalog; scopes: Set<string>; onChange: (next: Set<string>) => void }) {
  const toggle = (s: string) => {
    const next = new Set(scopes);
    if (next.has(s)) next.delete(s);
    else next.add(s);
    onChange(next);
  };
  const listed = new Set(catalog.categories.flatMap((c) => c.scopes));
  const entries = new Map(catalog.data.map((e) => [e.name, e]));
  const other = [...scopes].filter((s) => !listed.has(s));
  const groups = other.length ? [...catalog.categories, { name: 'Not in the catalog', scopes: other }] : catalog.categories;
  return (
    <>
      {catalog.presets.length > 0 && (
        <div class="presets" role="group" aria-label="Presets">
          {catalog.presets.map((p) => (
            <button type="button" class="secondary" key={p.name} onClick={() => onChange(new Set([...scopes, ...p.scopes]))}>
              + {p.name}
            </button>
          ))}
        </div>
      )}
      {groups.map((c) => (
        <fieldset key={c.name}>
          <legend>{c.name}</legend>
          {c.scopes.map((s) => (
            <label class="inline" key={s}>
              <input type="checkbox" name="scope" value={s} checked={scopes.has(s)} onChange={() => toggle(s)} /> {s}
              {entries.get(s)?.dangerous && <span class="badge dangerous">dangerous</span>}
              {entries.get(s)?.description && <span class="muted small scope-description">{entries.get(s)!.description}</span>}
            </label>
          ))}
        </fieldset>
      ))}
    </>
  );
}

/**
 * A comma-separated list of IPs and CIDRs, split, and the first entry that cannot be one.
 * The check as typed is only a shape; the API's (core/ip.ts parseCidr) is the rule, and its
 * refusal is shown as it comes.
 */
export function parseAllowlist(text: string): { list: string[]; bad: string | undefined } {
  const list = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return { list, bad: list.find((s) => !/^[0-9a-fA-F:.]+(\/\d{1,3})?$/.test(s)) };
}
