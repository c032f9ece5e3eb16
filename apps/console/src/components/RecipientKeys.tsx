/**
 * Recipient keys for an integration: pasted or uploaded, each checked by the server with the same
 * policy the agent applies (packages/pgp), and shown with fingerprint, algorithm, expiry and any
 * warning (such as the cipher a key will get). A weak, expired or revoked key is refused here and
 * never added to the form. A file holding several keys adds each as its own recipient, and says so.
 */
import { useId, useState } from 'react';
import { useMutation } from '@tanstack/react-query';
import { formatFingerprint, formatTime } from '../format.ts';
import { errorMessage, useTRPC } from '../trpc.ts';
import { addRecipientKeys, type RecipientEntry } from './recipient-entries.ts';
import { Badge, Notice } from './ui.tsx';

export type { RecipientEntry };

/** Public keys are small; a bigger file is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

export function RecipientKeys({ value, onChange, disabled }: { value: RecipientEntry[]; onChange: (next: RecipientEntry[]) => void; disabled?: boolean }) {
  const trpc = useTRPC();
  const pasteId = useId();
  const fileId = useId();
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  const inspect = useMutation(trpc.console.inspectRecipient.mutationOptions());

  const add = async (armored: string) => {
    setProblem(null);
    setAdded(null);
    try {
      const result = await inspect.mutateAsync({ armored });
      if (!result.ok) return setProblem(`Refused: ${result.problem}`);
      const merged = addRecipientKeys(value, result.keys);
      if (!merged.ok) return setProblem(merged.problem);
      onChange(merged.next);
      setAdded(merged.note);
      setText('');
    } catch (error) {
      setProblem(errorMessage(error));
    }
  };

  return (
    <fieldset className="recipients" disabled={disabled}>
      <legend>Recipient keys</legend>
      <p className="hint">Files are encrypted to every key listed. Agents also check each fingerprint against their local policy.</p>
      {value.length === 0 ? (
        <p className="muted">No recipient yet: add at least one public key.</p>
      ) : (
        <ul className="key-list" aria-label="Recipient keys">
          {value.map((entry) => (
            <li key={entry.fingerprint} className="key">
              <div>
                <div className="mono">{formatFingerprint(entry.fingerprint)}</div>
                <div className="muted small">
                  {entry.userIds.join(', ') || 'no user ID'} · {entry.algorithm}
                  {entry.bits ? ` ${entry.bits}` : ''} · {entry.expires ? `expires ${formatTime(entry.expires)}` : 'does not expire'}
                </div>
                {entry.warnings.map((warning) => (
                  <div key={warning} className="small">
                    <Badge tone="warn">note</Badge> {warning}
                  </div>
                ))}
              </div>
              <button
                type="button"
                className="button secondary small"
                onClick={() => onChange(value.filter((other) => other.fingerprint !== entry.fingerprint))}
                aria-label={`Remove key ${formatFingerprint(entry.fingerprint)}`}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="field">
        <label htmlFor={pasteId}>Paste an armored public key</label>
        <textarea
          id={pasteId}
          className="mono"
          rows={4}
          value={text}
          placeholder="-----BEGIN PGP PUBLIC KEY BLOCK-----"
          onChange={(event) => setText(event.target.value)}
          spellCheck={false}
        />
      </div>
      <div className="row">
        <button type="button" className="button secondary" disabled={text.trim() === '' || inspect.isPending} onClick={() => void add(text.trim())}>
          {inspect.isPending ? 'Checking…' : 'Check and add key'}
        </button>
        <label htmlFor={fileId} className="file-label">
          or upload a key file
        </label>
        <input
          id={fileId}
          type="file"
          accept=".asc,.pub,.txt,.key,application/pgp-keys"
          onChange={(event) => {
            const file = event.target.files?.[0];
            event.target.value = '';
            if (!file) return;
            if (file.size > MAX_KEY_FILE_BYTES) return setProblem('That file is too large to be a public key.');
            void file.text().then((content) => add(content.trim()));
          }}
        />
      </div>
      {added && <Notice tone="info">{added}</Notice>}
      {problem && <Notice tone="bad">{problem}</Notice>}
    </fieldset>
  );
}
