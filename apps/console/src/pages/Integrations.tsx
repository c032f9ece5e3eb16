import { useEffect, useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { RecipientKeys, type RecipientEntry } from '../components/RecipientKeys.tsx';
import { asSchema, configFrom, type FormErrors, type FormValues, SchemaForm, validateAgainst } from '../components/SchemaForm.tsx';
import { describedBy, Empty, Field, Loading, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime, shortId } from '../format.ts';
import { Link } from '../router.tsx';
import { Can, useSession } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

/** A field's error goes away as soon as the field is edited; the next save checks again. */
function withoutKey(errors: FormErrors, name: string): FormErrors {
  const { [name]: _dropped, ...rest } = errors;
  return rest;
}

type Editing = { kind: 'new' } | { kind: 'edit'; id: string } | null;

export function IntegrationsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const integrations = useQuery(trpc.integrations.list.queryOptions());
  const agents = useQuery(trpc.console.agents.queryOptions());
  const [editing, setEditing] = useState<Editing>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string; runId?: string } | null>(null);
  const runNow = useMutation(
    trpc.integrations.runNow.mutationOptions({
      onSuccess: (result) => {
        setMessage({ tone: 'ok', text: 'Run queued.', runId: result.runId });
        void queryClient.invalidateQueries({ queryKey: trpc.runs.list.queryKey() });
      },
      onError: (error) => setMessage({ tone: 'bad', text: errorMessage(error) }),
    }),
  );
  const hostOf = (agentId: string) => agents.data?.find((agent) => agent.id === agentId)?.hostname ?? shortId(agentId);
  return (
    <>
      <PageHeader
        title="Integrations"
        description="What to pull, where to deliver it, and who can decrypt it. Saving checks the agent's grants; the agent checks its local policy again."
        actions={
          <Can permission="integrations:write">
            <button type="button" className="button primary" onClick={() => setEditing({ kind: 'new' })} disabled={editing?.kind === 'new'}>
              New integration
            </button>
          </Can>
        }
      />
      {message && (
        <Notice tone={message.tone}>
          {message.text} {message.runId && <Link to={`/runs?run=${message.runId}`}>Watch run {shortId(message.runId)}</Link>}
        </Notice>
      )}
      {editing && (
        <IntegrationEditor
          key={editing.kind === 'edit' ? editing.id : 'new'}
          editing={editing}
          onDone={(saved) => {
            setEditing(null);
            if (saved) {
              setMessage({ tone: 'ok', text: `Saved ${saved.name} as version ${saved.version}.` });
              void queryClient.invalidateQueries({ queryKey: trpc.integrations.list.queryKey() });
            }
          }}
        />
      )}
      <QueryView query={integrations} label="Loading integrations">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No integrations yet">An integration names a source, a destination and the recipient keys files are encrypted to.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Integrations</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Agent</th>
                    <th scope="col">Version</th>
                    <th scope="col">Schedule</th>
                    <th scope="col">Next run</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((integration) => (
                    <tr key={integration.id}>
                      <th scope="row">{integration.name}</th>
                      <td>{integration.agentId === null ? 'an agent group' : hostOf(integration.agentId)}</td>
                      <td>v{integration.version}</td>
                      <td>{integration.schedule ? <span className="mono">{`${integration.schedule.cron} (${integration.schedule.timezone})`}</span> : <span className="muted">manual</span>}</td>
                      <td>{integration.nextRunAt ? formatTime(integration.nextRunAt) : '—'}</td>
                      <td className="actions">
                        <Can permission="runs:create">
                          <button type="button" className="button secondary small" disabled={runNow.isPending} onClick={() => runNow.mutate({ id: integration.id })}>
                            Run {integration.name} now
                          </button>
                        </Can>
                        <Can permission="integrations:write">
                          <button type="button" className="button secondary small" onClick={() => setEditing({ kind: 'edit', id: integration.id })}>
                            Edit {integration.name}
                          </button>
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

interface Draft {
  name: string;
  agentId: string;
  sourceRef: string;
  source: FormValues;
  destinationRef: string;
  destination: FormValues;
  recipients: RecipientEntry[];
  scheduled: boolean;
  cron: string;
  timezone: string;
  /** Saved options this form does not edit (output, selection, fields...), kept as they were. */
  rest: Record<string, unknown>;
}

const emptyDraft: Draft = {
  name: '',
  agentId: '',
  sourceRef: '',
  source: {},
  destinationRef: '',
  destination: {},
  recipients: [],
  scheduled: false,
  cron: '0 * * * *',
  timezone: 'UTC',
  rest: {},
};

function IntegrationEditor({ editing, onDone }: { editing: NonNullable<Editing>; onDone: (saved: { name: string; version: number } | null) => void }) {
  const trpc = useTRPC();
  const existing = useQuery({ ...trpc.console.integration.queryOptions({ id: editing.kind === 'edit' ? editing.id : '' }), enabled: editing.kind === 'edit' });
  const inspect = useMutation(trpc.console.inspectRecipient.mutationOptions());
  const [initial, setInitial] = useState<Draft | null>(editing.kind === 'new' ? emptyDraft : null);
  /** Why each saved key that no longer passes was left out of the form. */
  const [dropped, setDropped] = useState<string[]>([]);

  useEffect(() => {
    if (editing.kind !== 'edit' || !existing.data || initial) return;
    const { name, agentId, source, destination, recipients, schedule, ...rest } = existing.data.spec;
    void Promise.all(recipients.map((armored) => inspect.mutateAsync({ armored }).then((result) => ({ armored, result })))).then((checked) => {
      setDropped(checked.flatMap(({ result }) => (result.ok ? [] : [result.problem])));
      setInitial({
        name,
        agentId: agentId ?? '',
        sourceRef: source.connector,
        source: source.config,
        destinationRef: destination.connector,
        destination: destination.config,
        // A saved key that no longer passes (expired since) is left out, and the form says which and why:
        // saving keeps only the keys shown. A saved file with several keys comes back as one entry per key.
        recipients: checked.flatMap(({ result }) => (result.ok ? result.keys : [])),
        scheduled: schedule !== undefined,
        cron: schedule?.cron ?? '0 * * * *',
        timezone: schedule?.timezone ?? 'UTC',
        rest,
      });
    });
  }, [editing.kind, existing.data, initial, inspect]);

  if (editing.kind === 'edit' && existing.isError) return <Notice tone="bad">{errorMessage(existing.error)}</Notice>;
  if (!initial) return <Loading label="Loading the integration" />;
  return <EditorForm initial={initial} dropped={dropped} isNew={editing.kind === 'new'} onDone={onDone} />;
}

function EditorForm({
  initial,
  dropped,
  isNew,
  onDone,
}: {
  initial: Draft;
  dropped: readonly string[];
  isNew: boolean;
  onDone: (saved: { name: string; version: number } | null) => void;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { can } = useSession();
  const connectors = useQuery(trpc.console.connectors.queryOptions());
  const agents = useQuery(trpc.console.agents.queryOptions());
  const save = useMutation(trpc.integrations.save.mutationOptions());
  const [draft, setDraft] = useState<Draft>(initial);
  const [errors, setErrors] = useState<{ name?: string; agentId?: string; recipients?: string; schedule?: string; source: FormErrors; destination: FormErrors }>({
    source: {},
    destination: {},
  });
  const [formError, setFormError] = useState<string | null>(null);
  const ids = { name: useId(), agent: useId(), source: useId(), destination: useId(), cron: useId(), timezone: useId(), heading: useId() };

  if (connectors.isPending || agents.isPending) return <Loading label="Loading connectors" />;
  if (!connectors.data || !agents.data) return <Notice tone="bad">{errorMessage(connectors.error ?? agents.error)}</Notice>;
  const sources = connectors.data.filter((c) => c.kind === 'source');
  const destinations = connectors.data.filter((c) => c.kind === 'destination');
  const sourceSchema = asSchema(sources.find((c) => c.ref === draft.sourceRef)?.configSchema);
  const destinationSchema = asSchema(destinations.find((c) => c.ref === draft.destinationRef)?.configSchema);
  const activeAgents = agents.data.filter((agent) => agent.status === 'active');
  const update = (patch: Partial<Draft>) => setDraft((current) => ({ ...current, ...patch }));

  const submit = async () => {
    setFormError(null);
    const next: typeof errors = {
      name: /^[a-z0-9][a-z0-9._-]{0,62}$/.test(draft.name) ? undefined : 'Lowercase letters, digits, dot, dash and underscore; 1 to 63 characters.',
      agentId: draft.agentId ? undefined : 'Choose the agent that runs this integration.',
      recipients: draft.recipients.length > 0 ? undefined : 'Add at least one recipient key.',
      schedule: draft.scheduled && draft.cron.trim().split(/\s+/).length !== 5 ? 'Five fields: minute hour day-of-month month day-of-week.' : undefined,
      source: draft.sourceRef ? validateAgainst(sourceSchema, draft.source) : { '': 'Choose a source.' },
      destination: draft.destinationRef ? validateAgainst(destinationSchema, draft.destination) : { '': 'Choose a destination.' },
    };
    const sourceConfig = configFrom(sourceSchema, draft.source);
    const destinationConfig = configFrom(destinationSchema, draft.destination);
    // The connector's own zod schema has the last word on its config, before anything is saved.
    if (draft.sourceRef && Object.keys(next.source).length === 0) {
      const checked = await queryClient.fetchQuery(trpc.console.checkConfig.queryOptions({ kind: 'source', connector: draft.sourceRef, config: sourceConfig }));
      for (const issue of checked.issues) next.source[issue.path.split('.')[0] ?? ''] = issue.message;
    }
    if (draft.destinationRef && Object.keys(next.destination).length === 0) {
      const checked = await queryClient.fetchQuery(
        trpc.console.checkConfig.queryOptions({ kind: 'destination', connector: draft.destinationRef, config: destinationConfig }),
      );
      for (const issue of checked.issues) next.destination[issue.path.split('.')[0] ?? ''] = issue.message;
    }
    setErrors(next);
    const invalid = next.name || next.agentId || next.recipients || next.schedule || Object.keys(next.source).length > 0 || Object.keys(next.destination).length > 0;
    if (invalid) return setFormError('Fix the fields marked below.');
    try {
      const saved = await save.mutateAsync({
        ...draft.rest,
        name: draft.name,
        agentId: draft.agentId,
        source: { connector: draft.sourceRef, config: sourceConfig },
        destination: { connector: draft.destinationRef, config: destinationConfig },
        recipients: draft.recipients.map((entry) => entry.armored),
        schedule: draft.scheduled ? { cron: draft.cron.trim(), timezone: draft.timezone.trim() || 'UTC', missed: 'run-once' } : undefined,
      });
      onDone({ name: draft.name, version: saved.version });
    } catch (error) {
      setFormError(errorMessage(error));
    }
  };

  return (
    <section className="panel editor" aria-labelledby={ids.heading}>
      <h2 id={ids.heading}>{isNew ? 'New integration' : `Edit ${initial.name}`}</h2>
      <form
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        {formError && <Notice tone="bad">{formError}</Notice>}
        <div className="grid-2">
          <Field id={ids.name} label="Name" hint="Saving under an existing name makes a new version of it." error={errors.name}>
            <input
              id={ids.name}
              value={draft.name}
              readOnly={!isNew}
              onChange={(event) => update({ name: event.target.value })}
              aria-invalid={errors.name ? true : undefined}
              aria-describedby={describedBy(ids.name, true, errors.name)}
              autoComplete="off"
              required
            />
          </Field>
          <Field id={ids.agent} label="Agent" error={errors.agentId}>
            <select
              id={ids.agent}
              value={draft.agentId}
              onChange={(event) => update({ agentId: event.target.value })}
              aria-invalid={errors.agentId ? true : undefined}
              aria-describedby={describedBy(ids.agent, false, errors.agentId)}
              required
            >
              <option value="">Choose an agent…</option>
              {activeAgents.map((agent) => (
                <option key={agent.id} value={agent.id}>
                  {agent.hostname} ({shortId(agent.id)})
                </option>
              ))}
            </select>
          </Field>
        </div>
        <div className="grid-2">
          <fieldset>
            <legend>Source</legend>
            <Field id={ids.source} label="Source connector" error={errors.source[''] ?? null}>
              <select id={ids.source} value={draft.sourceRef} onChange={(event) => update({ sourceRef: event.target.value, source: {} })} required>
                <option value="">Choose…</option>
                {sources.map((c) => (
                  <option key={c.ref} value={c.ref}>
                    {c.title} ({c.ref})
                  </option>
                ))}
              </select>
            </Field>
            {draft.sourceRef && (
              <SchemaForm schema={sourceSchema} values={draft.source} errors={errors.source} onChange={(name, value) => {
                  update({ source: { ...draft.source, [name]: value } });
                  setErrors((current) => ({ ...current, source: withoutKey(current.source, name) }));
                }} />
            )}
          </fieldset>
          <fieldset>
            <legend>Destination</legend>
            <Field id={ids.destination} label="Destination connector" error={errors.destination[''] ?? null}>
              <select id={ids.destination} value={draft.destinationRef} onChange={(event) => update({ destinationRef: event.target.value, destination: {} })} required>
                <option value="">Choose…</option>
                {destinations.map((c) => (
                  <option key={c.ref} value={c.ref}>
                    {c.title} ({c.ref})
                  </option>
                ))}
              </select>
            </Field>
            {draft.destinationRef && (
              <SchemaForm
                schema={destinationSchema}
                values={draft.destination}
                errors={errors.destination}
                onChange={(name, value) => {
                  update({ destination: { ...draft.destination, [name]: value } });
                  setErrors((current) => ({ ...current, destination: withoutKey(current.destination, name) }));
                }}
              />
            )}
          </fieldset>
        </div>
        {dropped.length > 0 && (
          <Notice tone="bad">
            {dropped.length === 1 ? 'A saved recipient key no longer passes and is' : `${dropped.length} saved recipient keys no longer pass and are`} not in
            this form:
            <ul>
              {dropped.map((problem) => (
                <li key={problem}>{problem}</li>
              ))}
            </ul>
            Saving keeps only the keys listed below. Add a current key for each recipient who must still read the files.
          </Notice>
        )}
        <RecipientKeys value={draft.recipients} onChange={(recipients) => update({ recipients })} />
        {errors.recipients && (
          <div className="field-error" role="alert">
            {errors.recipients}
          </div>
        )}
        <fieldset>
          <legend>Schedule</legend>
          <div className="field field-check">
            <input id={`${ids.cron}-on`} type="checkbox" checked={draft.scheduled} onChange={(event) => update({ scheduled: event.target.checked })} />
            <label htmlFor={`${ids.cron}-on`}>Run on a schedule</label>
          </div>
          {draft.scheduled && (
            <div className="grid-2">
              <Field id={ids.cron} label="Cron expression" hint="minute hour day-of-month month day-of-week, e.g. 30 2 * * * for 02:30 daily" error={errors.schedule}>
                <input
                  id={ids.cron}
                  className="mono"
                  value={draft.cron}
                  onChange={(event) => update({ cron: event.target.value })}
                  aria-invalid={errors.schedule ? true : undefined}
                  aria-describedby={describedBy(ids.cron, true, errors.schedule)}
                />
              </Field>
              <Field id={ids.timezone} label="Time zone" hint="An IANA zone such as Europe/Berlin.">
                <input id={ids.timezone} value={draft.timezone} onChange={(event) => update({ timezone: event.target.value })} aria-describedby={`${ids.timezone}-hint`} />
              </Field>
            </div>
          )}
        </fieldset>
        <div className="form-actions">
          <button type="button" className="button secondary" onClick={() => onDone(null)}>
            Cancel
          </button>
          <button type="submit" className="button primary" disabled={save.isPending || !can('integrations:write')}>
            {save.isPending ? 'Saving…' : 'Save integration'}
          </button>
        </div>
      </form>
    </section>
  );
}
