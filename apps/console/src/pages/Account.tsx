import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { TotpQrCode } from '../components/TotpQrCode.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';
import { startRegistration } from '@simplewebauthn/browser';

/** The signed-in person's own sign-in: two-step sign-in with an authenticator app or passkeys (added and removed), and their password. */
export function AccountPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const ids = { code: useId(), current: useId(), next: useId() };
  const status = useQuery(trpc.account.status.queryOptions());
  const [code, setCode] = useState('');
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [recoveryCodes, setRecoveryCodes] = useState<string[] | null>(null);
  /** How many other sessions the last removal of the authenticator app signed out; null: none removed here. */
  const [totpRemoved, setTotpRemoved] = useState<number | null>(null);
  const begin = useMutation(trpc.account.beginTotp.mutationOptions());
  const confirm = useMutation(
    trpc.account.confirmTotp.mutationOptions({
      onSuccess: (result) => {
        setRecoveryCodes(result.recoveryCodes);
        setCode('');
        begin.reset();
        void queryClient.invalidateQueries({ queryKey: trpc.account.status.queryKey() });
      },
    }),
  );
  const passkeyConfirm = useMutation(
    trpc.account.confirmPasskey.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.account.status.queryKey() }) }),
  );
  const passkey = useMutation(trpc.account.beginPasskey.mutationOptions());
  const [passkeyError, setPasskeyError] = useState<string | null>(null);
  /** Options from the server, the browser's WebAuthn call, and its answer back to the server to check. */
  const addPasskey = async () => {
    setPasskeyError(null);
    try {
      const options = await passkey.mutateAsync();
      const response = await startRegistration({ optionsJSON: options });
      await passkeyConfirm.mutateAsync({ response: response as never });
    } catch (error) {
      setPasskeyError(errorMessage(error));
    }
  };
  const change = useMutation(
    trpc.account.changePassword.mutationOptions({
      onSuccess: () => {
        setCurrent('');
        setNext('');
      },
    }),
  );
  return (
    <>
      <PageHeader title="Account" description="How you sign in." />
      <QueryView query={status}>
        {(account) => (
          <>
            <section className="card" aria-labelledby="totp-heading">
              <h2 id="totp-heading">Two-step sign-in</h2>
              {account.singleSignOn ? (
                <p>You sign in through your identity provider, which handles your second factor.</p>
              ) : (
                <>
                  <p>{account.totpEnabled ? `On. ${account.recoveryCodesLeft} recovery codes left.` : 'Off.'}</p>
                  {recoveryCodes && (
                    <Notice tone="ok">
                      Save these recovery codes now; each signs you in once and they are not shown again.
                      <ul className="recovery-codes" data-testid="recovery-codes">
                        {recoveryCodes.map((item) => (
                          <li key={item}>
                            <code>{item}</code>
                          </li>
                        ))}
                      </ul>
                    </Notice>
                  )}
                  {begin.data ? (
                    <form
                      onSubmit={(event) => {
                        event.preventDefault();
                        confirm.mutate({ code });
                      }}
                    >
                      <TotpQrCode secret={begin.data.secret} otpauthUri={begin.data.otpauthUri} />
                      {confirm.isError && <Notice tone="bad">{errorMessage(confirm.error)}</Notice>}
                      <Field id={ids.code} label="Authentication code">
                        <input id={ids.code} autoComplete="one-time-code" value={code} onChange={(event) => setCode(event.target.value)} required />
                      </Field>
                      <button type="submit" className="button primary" disabled={confirm.isPending}>
                        Turn on
                      </button>
                    </form>
                  ) : (
                    <button type="button" className="button secondary" onClick={() => begin.mutate()} disabled={begin.isPending}>
                      {account.totpEnabled ? 'Replace authenticator' : 'Set up authenticator app'}
                    </button>
                  )}
                  {begin.isError && <Notice tone="bad">{errorMessage(begin.error)}</Notice>}
                  {totpRemoved !== null && !account.totpEnabled && <Notice tone="ok">Authenticator app removed. Your other sessions were signed out ({totpRemoved}).</Notice>}
                  {account.totpEnabled && !begin.data && <RemoveTotp onRemoved={(ended) => (setRecoveryCodes(null), setTotpRemoved(ended))} />}
                </>
              )}
            </section>
            {!account.singleSignOn && (
              <section className="card" aria-labelledby="passkey-heading">
                <h2 id="passkey-heading">Passkeys</h2>
                <p data-testid="passkey-count">{account.passkeys === 0 ? 'No passkeys yet.' : `${account.passkeys} passkey${account.passkeys === 1 ? '' : 's'} registered.`}</p>
                {passkeyConfirm.isSuccess && <Notice tone="ok">Passkey added. You can use it instead of a code when you sign in.</Notice>}
                {passkeyError && <Notice tone="bad">{passkeyError}</Notice>}
                <button type="button" className="button secondary" onClick={() => void addPasskey()} disabled={passkey.isPending || passkeyConfirm.isPending}>
                  Add a passkey
                </button>
                {account.passkeys > 0 && <Passkeys />}
              </section>
            )}
            {account.hasPassword && (
              <section className="card" aria-labelledby="password-heading">
                <h2 id="password-heading">Password</h2>
                <form
                  onSubmit={(event) => {
                    event.preventDefault();
                    change.mutate({ currentPassword: current, newPassword: next });
                  }}
                >
                  {change.isError && <Notice tone="bad">{errorMessage(change.error)}</Notice>}
                  {change.isSuccess && <Notice tone="ok">Password changed. Your other sessions were signed out ({change.data.sessionsEnded}).</Notice>}
                  <Field id={ids.current} label="Current password">
                    <input id={ids.current} type="password" autoComplete="current-password" value={current} onChange={(event) => setCurrent(event.target.value)} required />
                  </Field>
                  <Field id={ids.next} label="New password" hint="At least 12 characters.">
                    <input id={ids.next} type="password" autoComplete="new-password" value={next} onChange={(event) => setNext(event.target.value)} required minLength={12} />
                  </Field>
                  <button type="submit" className="button primary" disabled={change.isPending}>
                    Change password
                  </button>
                </form>
              </section>
            )}
          </>
        )}
      </QueryView>
    </>
  );
}

/** After a factor is removed, what the page shows of the account changes; the other sessions were signed out. */
function useAccountChanged() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return () => {
    void queryClient.invalidateQueries({ queryKey: trpc.account.status.queryKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.account.passkeys.queryKey() });
  };
}

/** Removing the authenticator app takes the password and a code: an unattended open session is not enough. */
function RemoveTotp({ onRemoved }: { onRemoved: (sessionsEnded: number) => void }) {
  const trpc = useTRPC();
  const changed = useAccountChanged();
  const ids = { password: useId(), code: useId() };
  const [open, setOpen] = useState(false);
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const remove = useMutation(
    trpc.account.removeTotp.mutationOptions({
      onSuccess: (result) => {
        setPassword('');
        setCode('');
        setOpen(false);
        onRemoved(result.sessionsEnded);
        changed();
      },
    }),
  );
  if (!open) {
    return (
      <button type="button" className="button danger" onClick={() => (remove.reset(), setOpen(true))}>
        Remove authenticator app
      </button>
    );
  }
  return (
    <form
      aria-label="Remove the authenticator app"
      onSubmit={(event) => {
        event.preventDefault();
        remove.mutate({ currentPassword: password, code });
      }}
    >
      <p>Its recovery codes stop working too, and your other sessions are signed out.</p>
      {remove.isError && <Notice tone="bad">{errorMessage(remove.error)}</Notice>}
      <Field id={ids.password} label="Current password">
        <input id={ids.password} type="password" autoComplete="current-password" value={password} onChange={(event) => setPassword(event.target.value)} required />
      </Field>
      <Field id={ids.code} label="Authentication or recovery code">
        <input id={ids.code} autoComplete="one-time-code" value={code} onChange={(event) => setCode(event.target.value)} required />
      </Field>
      <button type="submit" className="button danger" disabled={remove.isPending}>
        Remove
      </button>
      <button type="button" className="button secondary" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </form>
  );
}

/** The account's passkeys; removing one takes the password. */
function Passkeys() {
  const trpc = useTRPC();
  const changed = useAccountChanged();
  const id = useId();
  const list = useQuery(trpc.account.passkeys.queryOptions());
  const [chosen, setChosen] = useState<string | null>(null);
  const [password, setPassword] = useState('');
  const remove = useMutation(
    trpc.account.removePasskey.mutationOptions({
      onSuccess: () => {
        setChosen(null);
        setPassword('');
        changed();
      },
    }),
  );
  return (
    <QueryView query={list} label="Loading passkeys">
      {(passkeys) => (
        <>
          {remove.isSuccess && <Notice tone="ok">Passkey removed. Your other sessions were signed out ({remove.data.sessionsEnded}).</Notice>}
          <ul className="passkeys" aria-label="Your passkeys">
            {passkeys.map((passkey, index) => (
              <li key={passkey.id}>
                Passkey {index + 1}, added {formatTime(passkey.createdAt)}, last used {formatAgo(passkey.lastUsedAt)}{' '}
                <button type="button" className="button danger small" onClick={() => (remove.reset(), setChosen(passkey.id))}>
                  Remove passkey {index + 1}
                </button>
              </li>
            ))}
          </ul>
          {chosen !== null && (
            <form
              aria-label="Remove the passkey"
              onSubmit={(event) => {
                event.preventDefault();
                remove.mutate({ id: chosen, currentPassword: password });
              }}
            >
              {remove.isError && <Notice tone="bad">{errorMessage(remove.error)}</Notice>}
              <Field id={id} label="Current password">
                <input id={id} type="password" autoComplete="current-password" value={password} onChange={(event) => setPassword(event.target.value)} required />
              </Field>
              <button type="submit" className="button danger" disabled={remove.isPending}>
                Remove
              </button>
              <button type="button" className="button secondary" onClick={() => setChosen(null)}>
                Cancel
              </button>
            </form>
          )}
        </>
      )}
    </QueryView>
  );
}
