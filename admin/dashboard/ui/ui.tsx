import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, serverNow } from './api';

export function navigate(to: string): void {
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
}

/** A link the page follows without a reload. */
export function Link(props: { href: string; class?: string; children: ComponentChildren; 'aria-current'?: 'page' | undefined }) {
  return (
    <a
      {...props}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    />
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

export function Scopes({ scopes }: { scopes: string[] }) {
  if (scopes.length === 0) return <span class="muted">no scopes</span>;
  return (
    <span class="scopes">
      {scopes.map((s) => (
        <span class="badge scope" key={s}>
          {s}
        </span>
      ))}
    </span>
  );
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1000],
];
const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

export function relative(iso: string): string {
  const diff = Date.parse(iso) - serverNow();
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === 'second') return rtf.format(Math.round(diff / ms), unit);
  }
  return iso;
}

/** "2 hours ago", with the exact time on hover and for screen readers. */
export function When({ at, never = 'never' }: { at: string | null; never?: string }) {
  if (at === null) return <span class="muted">{never}</span>;
  const exact = new Date(at).toLocaleString('en-GB', { timeZone: 'UTC', dateStyle: 'medium', timeStyle: 'medium' }) + ' UTC';
  return (
    <time dateTime={at} title={exact}>
      {relative(at)}
    </time>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="copy"
      aria-label={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          setDone(false);
        }
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

let modals = 0;

/** A modal dialog: labelled by its title, focus moved into it, Escape closes, focus kept inside. */
export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useMemo(() => `modal-title-${++modals}`, []);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>('input, select, textarea, button:not(.close)');
    (first ?? ref.current)?.focus();
    return () => before?.focus();
  }, []);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') props.onClose();
    if (e.key !== 'Tab' || !ref.current) return;
    const focusable = [...ref.current.querySelectorAll<HTMLElement>('a[href], button:not([disabled]), input, select, textarea')];
    const [first, last] = [focusable[0], focusable[focusable.length - 1]];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last?.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first?.focus();
    }
  };
  return (
    <div class="backdrop">
      <div class={`modal${props.wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={titleId} ref={ref} tabIndex={-1} onKeyDown={onKey}>
        <header>
          <h2 id={titleId}>{props.title}</h2>
          <button type="button" class="close" aria-label="Close" onClick={props.onClose}>
            ×
          </button>
        </header>
        {props.children}
      </div>
    </div>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const e = error instanceof ApiError ? error : null;
  return (
    <div class="error" role="alert">
      <p>{e ? e.message : String(error)}</p>
      {e && e.details.length > 0 && (
        <ul>
          {e.details.map((d) => (
            <li key={d.path}>
              <code>{d.path}</code>: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Loads `load()` when `deps` change; the last answer wins. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data: T | null; error: unknown; reload: () => void } {
  const [state, setState] = useState<{ data: T | null; error: unknown }>({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data, error: null }),
      (error: unknown) => live && setState({ data: null, error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export const fmt = new Intl.NumberFormat('en');

/** Keyset paging through a list route: this page's cursor, and those of the pages before it (the API's cursors only go forward). */
export function useCursorPages() {
  const [cursors, setCursors] = useState<string[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  return {
    cursor,
    number: cursors.length + 1,
    hasPrevious: cursors.length > 0,
    previous() {
      setCursor(cursors[cursors.length - 1] || null);
      setCursors(cursors.slice(0, -1));
    },
    next(next: string) {
      setCursors([...cursors, cursor ?? '']);
      setCursor(next);
    },
    /** An input handler that sets a filter and goes back to the first page. */
    refilter(set: (v: string) => void) {
      return (e: Event) => {
        set((e.currentTarget as HTMLInputElement).value);
        setCursors([]);
        setCursor(null);
      };
    },
  };
}

/** The optional reason of a suspension or revocation, as the audit log shows it. */
export function ReasonInput({ value, onInput }: { value: string; onInput: (v: string) => void }) {
  return (
    <label>
      Reason (optional, shown in the audit log)
      <input name="reason" value={value} onInput={(e) => onInput(e.currentTarget.value)} maxLength={500} />
    </label>
  );
}

/** Previous and Next under a paged list. */
export function Pager({ label, pages, next }: { label: string; pages: ReturnType<typeof useCursorPages>; next: string | null | undefined }) {
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" class="secondary" disabled={!pages.hasPrevious} onClick={() => pages.previous()}>
        Previous
      </button>
      <span>Page {pages.number}</span>
      <button type="button" class="secondary" disabled={!next} onClick={() => next && pages.next(next)}>
        Next
      </button>
    </nav>
  );
}
