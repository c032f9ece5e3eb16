import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { alertSeverities, type AlertSeverity } from '@airlock/protocol';
import { Badge, ConfirmButton, CopyButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime } from '../format.ts';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

const isSeverity = (value: string): value is AlertSeverity => (alertSeverities as readonly string[]).includes(value);

/**
 * Where alerts are sent: signed webhooks. The URL is sealed in the database and never shown again,
 * only its origin; the signing secret is shown once, when the destination is created.
 */
export function AlertDestinationsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const destinations = useQuery(trpc.alertDestinations.list.queryOptions());
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.alertDestinations.list.queryKey() });
  const onError = (error: unknown) => setMessage({ tone: 'bad', text: errorMessage(error) });
  const setEnabled = useMutation(trpc.alertDestinations.setEnabled.mutationOptions({ onSuccess: refresh, onError }));
  const remove = useMutation(
    trpc.alertDestinations.delete.mutationOptions({
      onSuccess: () => {
        setMessage({ tone: 'ok', text: 'Destination deleted.' });
        refresh();
      },
      onError,
    }),
  );
  const test = useMutation(
    trpc.alertDestinations.test.mutationOptions({
      onSuccess: (result) => setMessage({ tone: 'ok', text: `Test alert sent: ${JSON.stringify(result)}` }),
      onError,
    }),
  );
  return (
    <>
      <PageHeader title="Alert destinations" description="Webhooks that receive alerts, each request signed with the destination's own secret." />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      {secret && (
        <Notice tone="info">
          Signing secret of {secret.name}, shown this once: <code>{secret.value}</code> <CopyButton text={secret.value} />
        </Notice>
      )}
      <Can permission="alerts:write">
        <CreateDestination
          onCreated={(created) => {
            setSecret({ name: created.name, value: created.signingSecret });
            setMessage(null);
            refresh();
          }}
        />
      </Can>
      <QueryView query={destinations} label="Loading alert destinations">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No alert destinations">Alerts are recorded, and sent nowhere until a webhook is added.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Alert destinations</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Sends to</th>
                    <th scope="col">Alerts</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((destination) => (
                    <tr key={destination.id}>
                      <th scope="row">{destination.name}</th>
                      <td className="mono">{destination.origin}</td>
                      <td>
                        {destination.kinds.length === 0 ? 'every kind' : destination.kinds.join(', ')}, {destination.minSeverity} and above
                      </td>
                      <td>{destination.enabled ? <Badge tone="ok">enabled</Badge> : <Badge tone="neutral">disabled</Badge>}</td>
                      <td>{formatTime(destination.createdAt)}</td>
                      <td className="actions">
                        <Can permission="alerts:write">
                          <button
                            type="button"
                            className="button secondary small"
                            disabled={setEnabled.isPending}
                            onClick={() => setEnabled.mutate({ id: destination.id, enabled: !destination.enabled })}
                          >
                            {destination.enabled ? `Disable ${destination.name}` : `Enable ${destination.name}`}
                          </button>{' '}
                          <button type="button" className="button secondary small" disabled={test.isPending} onClick={() => test.mutate({ id: destination.id })}>
                            Send a test alert
                          </button>{' '}
                          <ConfirmButton
                            label={`Delete ${destination.name}`}
                            title={`Delete ${destination.name}?`}
                            body={<p>Alerts stop going to it, and its pending deliveries are dropped.</p>}
                            confirmLabel="Delete destination"
                            busy={remove.isPending}
                            onConfirm={() => remove.mutate({ id: destination.id })}
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

function CreateDestination({ onCreated }: { onCreated: (created: { name: string; signingSecret: string }) => void }) {
  const trpc = useTRPC();
  const ids = { name: useId(), url: useId(), severity: useId() };
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [severity, setSeverity] = useState<AlertSeverity>('warning');
  const create = useMutation(
    trpc.alertDestinations.create.mutationOptions({
      onSuccess: (created) => {
        setName('');
        setUrl('');
        onCreated(created);
      },
    }),
  );
  return (
    <form
      className="panel inline-form"
      aria-label="Add an alert destination"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate({ name, url, minSeverity: severity, kinds: [], enabled: true });
      }}
    >
      <Field id={ids.name} label="Name">
        <input id={ids.name} value={name} onChange={(event) => setName(event.target.value)} maxLength={100} required />
      </Field>
      <Field id={ids.url} label="Webhook URL" hint="https; sealed once saved, only its origin is shown">
        <input id={ids.url} type="url" value={url} onChange={(event) => setUrl(event.target.value)} maxLength={2048} required aria-describedby={`${ids.url}-hint`} />
      </Field>
      <Field id={ids.severity} label="Lowest severity sent">
        <select id={ids.severity} value={severity} onChange={(event) => isSeverity(event.target.value) && setSeverity(event.target.value)}>
          {alertSeverities.map((option) => (
            <option key={option} value={option}>
              {option}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" className="button primary" disabled={create.isPending || name.trim() === '' || url.trim() === ''}>
        Add destination
      </button>
      {create.isError && <Notice tone="bad">{errorMessage(create.error)}</Notice>}
    </form>
  );
}
