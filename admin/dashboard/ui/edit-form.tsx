import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, type Key, type KeyWithBalance } from './api';
import { ErrorNote, Modal } from './ui';

/**
 * The key page's editors, one dialog each, all through `PATCH /v1/keys/{id}` with only the
 * fields they change (docs/admin-api.md). The gateways apply a change from the next request.
 */
export type Editor = 'permissions' | 'rate limit' | 'IP allowlist' | 'expiry' | 'quota';

export interface EditorProps {
  /** The key as the key page read it: with its balance (`GET /v1/keys/{id}`). */
  keyRecord: KeyWithBalance;
  onClose: () => void;
  onSaved: (what: Editor) => void;
}

/**
 * A dialog with a form that sends `body()` as the key's PATCH, and the API's refusal if any.
 * `path` sends it elsewhere: the quota editor edits an application's shared quota with it.
 */
export function EditForm(
  props: Omit<EditorProps, 'keyRecord'> & {
    keyRecord: { id: string; name: string };
    path?: string;
    editor: Editor;
    body: () => Record<string, unknown> | null;
    children: ComponentChildren;
    wide?: boolean;
    consequence: ComponentChildren;
  },
) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const k = props.keyRecord;
  const body = props.body();
  return (
    <Modal title={`Edit the ${props.editor} of ${k.name}`} onClose={props.onClose} wide={props.wide}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (body === null) return;
          setBusy(true);
          setError(null);
          try {
            await api.patch<Key>(props.path ?? `/v1/keys/${encodeURIComponent(k.id)}`, body);
            props.onSaved(props.editor);
          } catch (err) {
            setError(err);
            setBusy(false);
          }
        }}
      >
        {props.children}
        <div class="consequence" aria-live="polite">
          {props.consequence}
        </div>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" disabled={body === null || busy}>
            Save {props.editor}
          </button>
        </div>
      </form>
    </Modal>
  );
}

