import { useEffect, useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Field, Notice } from '../components/ui.tsx';
import { errorMessage, setCsrfToken, useTRPC } from '../trpc.ts';
import { TotpQrCode } from '../components/TotpQrCode.tsx';
import { startAuthentication } from '@simplewebauthn/browser';

type Stage = 'second-factor' | 'change-password' | 'enroll-second-factor';
interface Pending {
  token: string;
  stage: Stage;
}
interface SignedIn {
  csrfToken: string;
  recoveryCodes?: string[];
}

/** The tenant's identity providers, once a tenant name is typed: each a link that begins single sign-on. */
function SingleSignOn({ tenant }: { tenant: string }) {
  const trpc = useTRPC();
  const [settled, setSettled] = useState(tenant);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(tenant.trim()), 300);
    return () => clearTimeout(timer);
  }, [tenant]);
  const providers = useQuery({ ...trpc.sso.loginProviders.queryOptions({ tenant: settled }), enabled: settled !== '' });
  if (!providers.data || providers.data.length === 0) return null;
  return (
    <div className="sso-providers" aria-label="Single sign-on">
      {providers.data.map((provider) => (
        <a key={provider.id} className="button secondary wide" href={`/auth/oidc/start?${new URLSearchParams({ tenant: settled, provider: provider.id }).toString()}`}>
          Sign in with {provider.name}
        </a>
      ))}
      <p className="muted">or with your password:</p>
    </div>
  );
}

export function LoginPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const ids = { tenant: useId(), email: useId(), password: useId(), code: useId(), newPassword: useId() };
  const [tenant, setTenant] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [newPassword, setNewPassword] = useState('');
  const [pending, setPending] = useState<Pending | null>(null);
  const [enrollment, setEnrollment] = useState<{ secret: string; otpauthUri: string } | null>(null);
  const [recovery, setRecovery] = useState<{ codes: string[]; session: SignedIn } | null>(null);
  const ssoFailed = new URLSearchParams(window.location.search).get('sso') === 'failed';

  const finish = (session: SignedIn) => {
    setCsrfToken(session.csrfToken);
    queryClient.setQueryData(trpc.session.me.queryKey(), session as never);
  };
  /** Every step answers with a session or the next step. */
  const onStep = (result: SignedIn | { pending: Pending }) => {
    setPassword('');
    setCode('');
    setNewPassword('');
    if ('pending' in result) {
      setPending(result.pending);
      return;
    }
    if (result.recoveryCodes) setRecovery({ codes: result.recoveryCodes, session: result });
    else finish(result);
  };
  const login = useMutation(trpc.session.login.mutationOptions({ onSuccess: onStep }));
  const verify = useMutation(trpc.session.verifySecondFactor.mutationOptions({ onSuccess: onStep }));
  const change = useMutation(trpc.session.changePasswordToContinue.mutationOptions({ onSuccess: onStep }));
  const begin = useMutation(trpc.session.beginEnrollment.mutationOptions({ onSuccess: setEnrollment }));
  const confirm = useMutation(trpc.session.confirmEnrollment.mutationOptions({ onSuccess: onStep }));
  const passkeyVerify = useMutation(trpc.session.verifyPasskey.mutationOptions({ onSuccess: onStep }));
  const passkey = useMutation(trpc.session.beginPasskey.mutationOptions());
  const [passkeyError, setPasskeyError] = useState<string | null>(null);
  /** The browser asks the authenticator; its signed answer goes back to the server to check. */
  const usePasskey = async (token: string) => {
    setPasskeyError(null);
    try {
      const options = await passkey.mutateAsync({ token });
      const response = await startAuthentication({ optionsJSON: options });
      await passkeyVerify.mutateAsync({ token, response: response as never });
    } catch (error) {
      setPasskeyError(errorMessage(error));
    }
  };
  const error = [login, verify, change, begin, confirm].find((mutation) => mutation.isError)?.error;

  if (recovery) {
    return (
      <main className="login" id="main">
        <section className="login-card" aria-labelledby="recovery-heading">
          <h1 id="recovery-heading">Save your recovery codes</h1>
          <p>Each code signs you in once if you lose your authenticator. They are shown only now.</p>
          <ul className="recovery-codes" data-testid="recovery-codes">
            {recovery.codes.map((item) => (
              <li key={item}>
                <code>{item}</code>
              </li>
            ))}
          </ul>
          <button type="button" className="button primary wide" onClick={() => finish(recovery.session)}>
            I have saved them
          </button>
        </section>
      </main>
    );
  }

  return (
    <main className="login" id="main">
      <form
        className="login-card"
        aria-labelledby="login-heading"
        onSubmit={(event) => {
          event.preventDefault();
          if (!pending) login.mutate({ tenant, email, password });
          else if (pending.stage === 'second-factor') verify.mutate({ token: pending.token, code });
          else if (pending.stage === 'change-password') change.mutate({ token: pending.token, newPassword });
          else if (enrollment) confirm.mutate({ token: pending.token, code });
          else begin.mutate({ token: pending.token });
        }}
      >
        <div className="brand">
          <img src="/favicon.svg" alt="" width={32} height={32} />
          <span>Airlock</span>
        </div>
        <h1 id="login-heading">
          {!pending
            ? 'Sign in to the console'
            : pending.stage === 'second-factor'
              ? 'Enter your authentication code'
              : pending.stage === 'change-password'
                ? 'Choose a new password'
                : 'Set up two-step sign-in'}
        </h1>
        {ssoFailed && !pending && <Notice tone="bad">Single sign-on failed. Try again, or ask your administrator.</Notice>}
        {error && <Notice tone="bad">{errorMessage(error)}</Notice>}
        {passkeyError && <Notice tone="bad">{passkeyError}</Notice>}
        {!pending && (
          <>
            <Field id={ids.tenant} label="Tenant">
              <input id={ids.tenant} autoComplete="organization" value={tenant} onChange={(event) => setTenant(event.target.value)} required autoFocus />
            </Field>
            <SingleSignOn tenant={tenant} />
            <Field id={ids.email} label="Email">
              <input id={ids.email} type="email" autoComplete="username" value={email} onChange={(event) => setEmail(event.target.value)} required />
            </Field>
            <Field id={ids.password} label="Password">
              <input id={ids.password} type="password" autoComplete="current-password" value={password} onChange={(event) => setPassword(event.target.value)} required />
            </Field>
          </>
        )}
        {pending?.stage === 'change-password' && (
          <Field id={ids.newPassword} label="New password" hint="At least 12 characters. An owner reset your password; choose your own.">
            <input id={ids.newPassword} type="password" autoComplete="new-password" value={newPassword} onChange={(event) => setNewPassword(event.target.value)} required minLength={12} />
          </Field>
        )}
        {pending?.stage === 'enroll-second-factor' && !enrollment && <p>Your tenant requires a second factor for your role. Set up an authenticator app to continue.</p>}
        {pending?.stage === 'enroll-second-factor' && enrollment && <TotpQrCode secret={enrollment.secret} otpauthUri={enrollment.otpauthUri} />}
        {(pending?.stage === 'second-factor' || (pending?.stage === 'enroll-second-factor' && enrollment)) && (
          <Field id={ids.code} label="Authentication code" hint={pending.stage === 'second-factor' ? 'From your authenticator app, or one of your recovery codes.' : undefined}>
            <input id={ids.code} autoComplete="one-time-code" inputMode="text" value={code} onChange={(event) => setCode(event.target.value)} required autoFocus />
          </Field>
        )}
        <button type="submit" className="button primary wide" disabled={[login, verify, change, begin, confirm].some((mutation) => mutation.isPending)}>
          {!pending ? (login.isPending ? 'Signing in…' : 'Sign in') : pending.stage === 'enroll-second-factor' && !enrollment ? 'Set up' : 'Continue'}
        </button>
        {pending?.stage === 'second-factor' && (
          <button type="button" className="button secondary wide" onClick={() => void usePasskey(pending.token)} disabled={passkey.isPending || passkeyVerify.isPending}>
            Use a passkey
          </button>
        )}
        {pending && (
          <button type="button" className="button secondary wide" onClick={() => setPending(null)}>
            Start over
          </button>
        )}
      </form>
    </main>
  );
}
