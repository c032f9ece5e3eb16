import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { Can, useSession } from '../session.tsx';
import type { Role } from '@airlock/api/router';
import { isRole, ROLES } from '../roles.ts';
import { errorMessage, useTRPC } from '../trpc.ts';


/** Passwords need at least 12 characters; the server hashes them with scrypt and never stores them. */
const MIN_PASSWORD = 12;

export function UsersPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { user: me, can } = useSession();
  const canWrite = can('users:write');
  const users = useQuery(trpc.users.list.queryOptions());
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
  const done = (text: string) => () => {
    setMessage({ tone: 'ok', text });
    refresh();
  };
  const onError = (error: unknown) => setMessage({ tone: 'bad', text: errorMessage(error) });
  const setRole = useMutation(trpc.users.setRole.mutationOptions({ onSuccess: done('Role changed.'), onError }));
  const disable = useMutation(trpc.users.disable.mutationOptions({ onSuccess: done('User disabled; their sessions ended.'), onError }));
  const unlock = useMutation(trpc.users.unlock.mutationOptions({ onSuccess: done('User unlocked.'), onError }));
  return (
    <>
      <PageHeader title="Users" description="People who sign in to this console. Nobody manages a user above their own role; disabling a user ends their sessions." />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      <Can permission="users:write">
        <CreateUser onCreated={done('User created.')} />
      </Can>
      <QueryView query={users} label="Loading users">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No console users yet" />
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Console users</caption>
                <thead>
                  <tr>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Status</th>
                    <th scope="col">Last sign-in</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((user) => {
                    const locked = user.lockedUntil !== null && Date.parse(user.lockedUntil) > Date.now();
                    const self = user.id === me.id;
                    return (
                      <tr key={user.id}>
                        <th scope="row">{user.email}</th>
                        <td>
                          {canWrite && !self && !user.disabled ? (
                            <select
                              aria-label={`Role of ${user.email}`}
                              value={user.role}
                              onChange={(event) => isRole(event.target.value) && setRole.mutate({ id: user.id, role: event.target.value })}
                            >
                              {ROLES.map((role) => (
                                <option key={role} value={role}>
                                  {role}
                                </option>
                              ))}
                            </select>
                          ) : (
                            user.role
                          )}
                        </td>
                        <td>
                          {user.disabled ? <Badge tone="neutral">disabled</Badge> : locked ? <Badge tone="warn">locked until {formatTime(user.lockedUntil)}</Badge> : <Badge tone="ok">active</Badge>}
                        </td>
                        <td>{formatAgo(user.lastLoginAt)}</td>
                        <td>{formatTime(user.createdAt)}</td>
                        <td className="actions">
                          <Can permission="users:write">
                            {locked && (
                              <button type="button" className="button secondary small" onClick={() => unlock.mutate({ id: user.id })}>
                                Unlock {user.email}
                              </button>
                            )}
                            {!self && !user.disabled && (
                              <ConfirmButton
                                label={`Disable ${user.email}`}
                                title={`Disable ${user.email}?`}
                                body={<p>They are signed out everywhere and cannot sign in again.</p>}
                                confirmLabel="Disable user"
                                onConfirm={() => disable.mutate({ id: user.id })}
                              />
                            )}
                          </Can>
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )
        }
      </QueryView>
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const trpc = useTRPC();
  const ids = { email: useId(), role: useId(), password: useId() };
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('auditor');
  const [password, setPassword] = useState('');
  const create = useMutation(
    trpc.users.create.mutationOptions({
      onSuccess: () => {
        setEmail('');
        setPassword('');
        onCreated();
      },
    }),
  );
  const tooShort = password.length > 0 && password.length < MIN_PASSWORD;
  return (
    <form
      className="panel inline-form"
      aria-label="Create a user"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate({ email, role, password });
      }}
    >
      <Field id={ids.email} label="Email">
        <input id={ids.email} type="email" autoComplete="off" value={email} onChange={(event) => setEmail(event.target.value)} required />
      </Field>
      <Field id={ids.role} label="Role">
        <select id={ids.role} value={role} onChange={(event) => isRole(event.target.value) && setRole(event.target.value)}>
          {ROLES.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
      </Field>
      <Field id={ids.password} label="Initial password" hint={`At least ${MIN_PASSWORD} characters. Share it out of band.`} error={tooShort ? `At least ${MIN_PASSWORD} characters.` : null}>
        <input
          id={ids.password}
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(event) => setPassword(event.target.value)}
          aria-invalid={tooShort || undefined}
          aria-describedby={`${ids.password}-hint${tooShort ? ` ${ids.password}-error` : ''}`}
          required
        />
      </Field>
      <button type="submit" className="button primary" disabled={create.isPending || !email || password.length < MIN_PASSWORD}>
        Create user
      </button>
      {create.isError && <Notice tone="bad">{errorMessage(create.error)}</Notice>}
    </form>
  );
}
