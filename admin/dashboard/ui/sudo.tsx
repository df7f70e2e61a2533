import { useState } from 'preact/hooks';
import { inSudo, session, type SessionInfo } from './api';
import { ErrorNote, Modal } from './ui';

/**
 * Runs `action` in sudo mode: when the password (or token) was not entered in the last few
 * minutes, asks for it first. The server enforces the same rule; this only asks before it refuses.
 */
export function useSudo(via: SessionInfo['via']) {
  const [pending, setPending] = useState<(() => void) | null>(null);
  const run = (action: () => void) => (inSudo() ? action() : setPending(() => action));
  const dialog = pending && (
    <SudoDialog
      via={via}
      onDone={() => {
        const next = pending;
        setPending(null);
        next();
      }}
      onClose={() => setPending(null)}
    />
  );
  return { run, dialog };
}

function SudoDialog({ via, onDone, onClose }: { via: SessionInfo['via']; onDone: () => void; onClose: () => void }) {
  const [secret, setSecret] = useState('');
  const [error, setError] = useState<unknown>(null);
  const what = via === 'token' ? 'admin token' : 'password';
  return (
    <Modal title={`Confirm your ${what}`} onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await session.sudo(secret, via);
            onDone();
          } catch (err) {
            setError(err);
          }
        }}
      >
        <p>Creating, regenerating and revoking keys need your {what} re-entered every few minutes.</p>
        <label>
          {via === 'token' ? 'Admin token' : 'Password'}
          <input type="password" name="sudo-secret" autocomplete={via === 'token' ? 'off' : 'current-password'} value={secret} onInput={(e) => setSecret(e.currentTarget.value)} required />
        </label>
        <ErrorNote error={error} />
        <div class="actions">
          <button type="button" class="secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit">Confirm</button>
        </div>
      </form>
    </Modal>
  );
}
