import { useId, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { Field, Notice } from '../components/ui.tsx';
import { errorMessage, setCsrfToken, useTRPC } from '../trpc.ts';

export function LoginPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const ids = { tenant: useId(), email: useId(), password: useId() };
  const [tenant, setTenant] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const login = useMutation(
    trpc.session.login.mutationOptions({
      onSuccess: (result) => {
        setCsrfToken(result.csrfToken);
        setPassword('');
        queryClient.setQueryData(trpc.session.me.queryKey(), result);
      },
    }),
  );
  return (
    <main className="login" id="main">
      <form
        className="login-card"
        aria-labelledby="login-heading"
        onSubmit={(event) => {
          event.preventDefault();
          login.mutate({ tenant, email, password });
        }}
      >
        <div className="brand">
          <img src="/favicon.svg" alt="" width={32} height={32} />
          <span>Airlock</span>
        </div>
        <h1 id="login-heading">Sign in to the console</h1>
        {login.isError && <Notice tone="bad">{errorMessage(login.error)}</Notice>}
        <Field id={ids.tenant} label="Tenant">
          <input id={ids.tenant} autoComplete="organization" value={tenant} onChange={(event) => setTenant(event.target.value)} required autoFocus />
        </Field>
        <Field id={ids.email} label="Email">
          <input id={ids.email} type="email" autoComplete="username" value={email} onChange={(event) => setEmail(event.target.value)} required />
        </Field>
        <Field id={ids.password} label="Password">
          <input id={ids.password} type="password" autoComplete="current-password" value={password} onChange={(event) => setPassword(event.target.value)} required />
        </Field>
        <button type="submit" className="button primary wide" disabled={login.isPending}>
          {login.isPending ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
