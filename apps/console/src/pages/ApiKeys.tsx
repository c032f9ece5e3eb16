import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, CopyButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { Can } from '../session.tsx';
import type { Role } from '@airlock/api/router';
import { isRole, ROLES } from '../roles.ts';
import { errorMessage, useTRPC } from '../trpc.ts';


export function ApiKeysPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const keys = useQuery(trpc.apiKeys.list.queryOptions());
  const [secret, setSecret] = useState<{ key: string; expiresAt: string } | null>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.apiKeys.list.queryKey() });
  const onError = (error: unknown) => setMessage({ tone: 'bad', text: errorMessage(error) });
  const rotate = useMutation(trpc.apiKeys.rotate.mutationOptions({ onSuccess: (result) => (setSecret(result), refresh()), onError }));
  const revoke = useMutation(trpc.apiKeys.revoke.mutationOptions({ onSuccess: () => (setMessage({ tone: 'ok', text: 'Key revoked.' }), refresh()), onError }));
  return (
    <>
      <PageHeader title="API keys" description="Keys for scripts and the airlock CLI. Stored hashed, shown once, expiring in at most 90 days, never above your own role." />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      {secret && (
        <div className="panel secret" role="status">
          <h2>Your new key</h2>
          <p>Copy it now: it is not shown again. It expires {formatTime(secret.expiresAt)}.</p>
          <div className="command">
            <pre>
              <code>{secret.key}</code>
            </pre>
            <CopyButton text={secret.key} label="Copy key" />
          </div>
          <button type="button" className="button secondary" onClick={() => setSecret(null)}>
            I have stored it
          </button>
        </div>
      )}
      <Can permission="keys:write">
        <CreateKey onCreated={(result) => (setSecret(result), refresh())} />
      </Can>
      <QueryView query={keys} label="Loading API keys">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No API keys" />
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">API keys</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Prefix</th>
                    <th scope="col">Role</th>
                    <th scope="col">Created by</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Last used</th>
                    <th scope="col">Status</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((key) => {
                    const expired = Date.parse(key.expiresAt) <= Date.now();
                    return (
                      <tr key={key.id}>
                        <th scope="row">{key.name}</th>
                        <td className="mono">{key.prefix}</td>
                        <td>{key.effectiveRole === key.role ? key.role : `${key.role} (acts as ${key.effectiveRole})`}</td>
                        <td>{key.createdBy === null ? 'CLI bootstrap' : key.createdBy.kind === 'user' ? (key.createdBy.email ?? key.createdBy.id) : `key ${key.createdBy.id.slice(0, 8)}`}</td>
                        <td>{formatTime(key.expiresAt)}</td>
                        <td>{formatAgo(key.lastUsedAt)}</td>
                        <td>{key.revokedAt ? (
                            <Badge tone="neutral">revoked</Badge>
                          ) : expired ? (
                            <Badge tone="warn">expired</Badge>
                          ) : key.suspended ? (
                            <Badge tone="warn">suspended</Badge>
                          ) : (
                            <Badge tone="ok">active</Badge>
                          )}</td>
                        <td className="actions">
                          {!key.revokedAt && (
                            <Can permission="keys:write">
                              <ConfirmButton
                                label={`Rotate ${key.name}`}
                                title={`Rotate ${key.name}?`}
                                body={<p>A new key with the same name and role is created and this one stops working at once.</p>}
                                confirmLabel="Rotate key"
                                tone="primary"
                                onConfirm={() => rotate.mutate({ id: key.id, expiresInDays: 30 })}
                              />
                              <ConfirmButton
                                label={`Revoke ${key.name}`}
                                title={`Revoke ${key.name}?`}
                                body={<p>Its next request is refused. There is no undo.</p>}
                                confirmLabel="Revoke key"
                                onConfirm={() => revoke.mutate({ id: key.id })}
                              />
                            </Can>
                          )}
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

function CreateKey({ onCreated }: { onCreated: (result: { key: string; expiresAt: string }) => void }) {
  const trpc = useTRPC();
  const ids = { name: useId(), role: useId(), days: useId() };
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('operator');
  const [days, setDays] = useState(30);
  const create = useMutation(trpc.apiKeys.create.mutationOptions({ onSuccess: (result) => (setName(''), onCreated(result)) }));
  return (
    <form
      className="panel inline-form"
      aria-label="Create an API key"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate({ name, role, expiresInDays: days });
      }}
    >
      <Field id={ids.name} label="Name">
        <input id={ids.name} value={name} onChange={(event) => setName(event.target.value)} maxLength={100} required />
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
      <Field id={ids.days} label="Expires in (days)">
        <input id={ids.days} type="number" min={1} max={90} value={days} onChange={(event) => setDays(Number(event.target.value))} required />
      </Field>
      <button type="submit" className="button primary" disabled={create.isPending || name.trim() === ''}>
        Create key
      </button>
      {create.isError && <Notice tone="bad">{errorMessage(create.error)}</Notice>}
    </form>
  );
}
