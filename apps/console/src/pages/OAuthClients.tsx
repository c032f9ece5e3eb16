/**
 * OAuth clients: the systems that call the API with the client credentials grant. A client's
 * secret is shown once; a private_key_jwt client registers public keys (a JWKS) and holds no secret.
 */
import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import type { Role } from '@airlock/api/router';
import { Badge, ConfirmButton, CopyButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { isRole, ROLES } from '../roles.ts';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

interface Shown {
  clientId: string;
  clientSecret: string | null;
}

export function OAuthClientsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const clients = useQuery(trpc.oauthClients.list.queryOptions());
  const [shown, setShown] = useState<Shown | null>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.oauthClients.list.queryKey() });
  const onError = (error: unknown) => setMessage({ tone: 'bad', text: errorMessage(error) });
  const done = (text: string) => () => (setMessage({ tone: 'ok', text }), refresh());
  const rotate = useMutation(trpc.oauthClients.rotate.mutationOptions({ onSuccess: (result) => (setShown(result), refresh()), onError }));
  const disable = useMutation(trpc.oauthClients.disable.mutationOptions({ onSuccess: done('Client disabled: its tokens stopped working.'), onError }));
  const enable = useMutation(trpc.oauthClients.enable.mutationOptions({ onSuccess: done('Client enabled.'), onError }));
  const remove = useMutation(trpc.oauthClients.delete.mutationOptions({ onSuccess: done('Client deleted.'), onError }));
  return (
    <>
      <PageHeader
        title="OAuth clients"
        description="One client per consuming system, with the least it needs. Tokens come from /oauth/token (client credentials) and live at most 15 minutes; disabling a client stops them at once."
      />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      {shown && (
        <div className="panel secret" role="status">
          <h2>Client credentials</h2>
          <p>client_id: <code>{shown.clientId}</code></p>
          {shown.clientSecret !== null && (
            <>
              <p>Copy the secret now: it is not shown again.</p>
              <div className="command">
                <pre>
                  <code>{shown.clientSecret}</code>
                </pre>
                <CopyButton text={shown.clientSecret} label="Copy secret" />
              </div>
            </>
          )}
          <button type="button" className="button secondary" onClick={() => setShown(null)}>
            Done
          </button>
        </div>
      )}
      <Can permission="keys:write">
        <CreateClient onCreated={(result) => (setShown(result), refresh())} />
      </Can>
      <QueryView query={clients} label="Loading OAuth clients">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No OAuth clients" />
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">OAuth clients</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">client_id</th>
                    <th scope="col">Authentication</th>
                    <th scope="col">Role and limits</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last used</th>
                    <th scope="col">Status</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((client) => (
                    <tr key={client.id}>
                      <th scope="row">{client.name}</th>
                      <td className="mono">{client.clientId}</td>
                      <td>{client.authMethod === 'private_key_jwt' ? 'private key (JWT)' : 'secret'}</td>
                      <td>
                        {client.role}
                        {client.readOnly && ', read-only'}
                        {client.permissions && `, only ${client.permissions.join(', ')}`}
                        {client.integrations && `, integrations ${client.integrations.names.join(', ')}`}
                      </td>
                      <td>{formatTime(client.createdAt)}</td>
                      <td>{formatAgo(client.lastUsedAt)}</td>
                      <td>{client.disabledAt ? <Badge tone="neutral">disabled</Badge> : <Badge tone="ok">active</Badge>}</td>
                      <td className="actions">
                        <Can permission="keys:write">
                          {client.authMethod === 'client_secret_basic' && (
                            <ConfirmButton
                              label={`Rotate ${client.name}`}
                              title={`Rotate the secret of ${client.name}?`}
                              body={<p>A new secret is shown once; the old one and every token issued with it stop working at once.</p>}
                              confirmLabel="Rotate secret"
                              tone="primary"
                              onConfirm={() => rotate.mutate({ id: client.id })}
                            />
                          )}
                          {client.disabledAt ? (
                            <button type="button" className="button secondary small" onClick={() => enable.mutate({ id: client.id })}>
                              Enable {client.name}
                            </button>
                          ) : (
                            <ConfirmButton
                              label={`Disable ${client.name}`}
                              title={`Disable ${client.name}?`}
                              body={<p>It gets no new tokens, and its live tokens are refused from their next request.</p>}
                              confirmLabel="Disable client"
                              onConfirm={() => disable.mutate({ id: client.id })}
                            />
                          )}
                          <ConfirmButton
                            label={`Delete ${client.name}`}
                            title={`Delete ${client.name}?`}
                            body={<p>The client and its credentials are removed. There is no undo.</p>}
                            confirmLabel="Delete client"
                            onConfirm={() => remove.mutate({ id: client.id })}
                          />
                        </Can>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </QueryView>
    </>
  );
}

function CreateClient({ onCreated }: { onCreated: (result: Shown) => void }) {
  const trpc = useTRPC();
  const ids = { name: useId(), role: useId(), method: useId(), jwks: useId(), integrations: useId(), readOnly: useId() };
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('operator');
  const [method, setMethod] = useState<'client_secret_basic' | 'private_key_jwt'>('client_secret_basic');
  const [jwks, setJwks] = useState('');
  const [integrations, setIntegrations] = useState('');
  const [readOnly, setReadOnly] = useState(false);
  const [invalid, setInvalid] = useState<string | null>(null);
  const create = useMutation(trpc.oauthClients.create.mutationOptions({ onSuccess: (result) => (setName(''), setJwks(''), onCreated(result)) }));
  return (
    <form
      className="panel inline-form"
      aria-label="Create an OAuth client"
      onSubmit={(event) => {
        event.preventDefault();
        let keys: unknown;
        if (method === 'private_key_jwt') {
          try {
            keys = JSON.parse(jwks);
          } catch {
            setInvalid('The JWKS is not JSON.');
            return;
          }
        }
        setInvalid(null);
        const names = integrations.split(',').map((item) => item.trim()).filter((item) => item !== '');
        // The server checks the JWKS against its schema and answers with what is wrong.
        create.mutate({ name, role, authMethod: method, readOnly, ...(names.length > 0 ? { integrations: names } : {}), ...(keys === undefined ? {} : { jwks: keys as { keys: [] } }) });
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
      <Field id={ids.method} label="Authentication">
        <select id={ids.method} value={method} onChange={(event) => setMethod(event.target.value === 'private_key_jwt' ? 'private_key_jwt' : 'client_secret_basic')}>
          <option value="client_secret_basic">secret (client_secret_basic)</option>
          <option value="private_key_jwt">private key (private_key_jwt)</option>
        </select>
      </Field>
      {method === 'private_key_jwt' && (
        <Field id={ids.jwks} label="Public keys (JWKS)" hint='{"keys": [...]}, public members only'>
          <textarea id={ids.jwks} value={jwks} onChange={(event) => setJwks(event.target.value)} rows={4} required />
        </Field>
      )}
      <Field id={ids.integrations} label="Only these integrations" hint="comma-separated names; empty: all">
        <input id={ids.integrations} value={integrations} onChange={(event) => setIntegrations(event.target.value)} />
      </Field>
      <Field id={ids.readOnly} label="Read-only">
        <input id={ids.readOnly} type="checkbox" checked={readOnly} onChange={(event) => setReadOnly(event.target.checked)} />
      </Field>
      <button type="submit" className="button primary" disabled={create.isPending || name.trim() === ''}>
        Create client
      </button>
      {invalid && <Notice tone="bad">{invalid}</Notice>}
      {create.isError && <Notice tone="bad">{errorMessage(create.error)}</Notice>}
    </form>
  );
}
