import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime, shortId } from '../format.ts';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

export function ScopesPage() {
  return (
    <>
      <PageHeader
        title="Scopes"
        description="Grants of an action on a resource to an agent or a group. Anything not granted is denied; the agent's local policy is a second, independent ceiling."
      />
      <Grants />
      <Explain />
      <LeastPrivilege />
    </>
  );
}

function useAgents() {
  const trpc = useTRPC();
  return useQuery(trpc.console.agents.queryOptions());
}

function Grants() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const grants = useQuery(trpc.grants.list.queryOptions({}));
  const agents = useAgents();
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  // Grants feed the explain tool and the report too: refresh everything scope-related.
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: trpc.grants.pathKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.reports.pathKey() });
  };
  const revoke = useMutation(
    trpc.grants.revoke.mutationOptions({
      onSuccess: (result) => {
        setMessage({ tone: 'ok', text: `Revoked ${result.scope}.` });
        refresh();
      },
      onError: (error) => setMessage({ tone: 'bad', text: errorMessage(error) }),
    }),
  );
  const subjectName = (subject: { type: string; id: string; name: string | null }) =>
    subject.type === 'group' ? `group ${subject.name ?? shortId(subject.id)}` : (agents.data?.find((agent) => agent.id === subject.id)?.hostname ?? `agent ${shortId(subject.id)}`);
  return (
    <section className="panel" aria-labelledby="grants-heading">
      <h2 id="grants-heading">Grants</h2>
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      <Can permission="scopes:write">
        <AddGrant onAdded={refresh} />
      </Can>
      <QueryView query={grants} label="Loading grants">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No grants">Without grants an agent may do nothing: add the scopes its integrations need.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Grants</caption>
                <thead>
                  <tr>
                    <th scope="col">Subject</th>
                    <th scope="col">Scope</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((grant) => (
                    <tr key={grant.id}>
                      <td>{subjectName(grant.subject)}</td>
                      <td className="mono">{grant.scope}</td>
                      <td>{grant.expired ? <Badge tone="bad">expired</Badge> : grant.expiresAt ? formatTime(grant.expiresAt) : 'never'}</td>
                      <td>
                        {formatTime(grant.createdAt)} <span className="muted small">{grant.createdBy}</span>
                      </td>
                      <td>
                        <Can permission="scopes:write">
                          <ConfirmButton
                            label="Revoke"
                            title="Revoke this grant?"
                            body={
                              <p>
                                <span className="mono">{grant.scope}</span> for {subjectName(grant.subject)}. Runs that need it are refused from their next dispatch.
                              </p>
                            }
                            confirmLabel="Revoke grant"
                            onConfirm={() => revoke.mutate({ id: grant.id })}
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
    </section>
  );
}

function AddGrant({ onAdded }: { onAdded: () => void }) {
  const trpc = useTRPC();
  const agents = useAgents();
  const ids = { subject: useId(), scope: useId(), expires: useId() };
  const [subject, setSubject] = useState('');
  const [scope, setScope] = useState('');
  const [expires, setExpires] = useState('');
  const add = useMutation(
    trpc.grants.add.mutationOptions({
      onSuccess: () => {
        setScope('');
        onAdded();
      },
    }),
  );
  return (
    <form
      className="inline-form"
      onSubmit={(event) => {
        event.preventDefault();
        const [type, value] = subject.split(':', 2);
        add.mutate({
          ...(type === 'group' ? { group: value ?? '' } : { agentId: value ?? '' }),
          scope,
          expiresAt: expires ? new Date(expires).toISOString() : undefined,
        });
      }}
    >
      <Field id={ids.subject} label="Agent or group">
        <select id={ids.subject} value={subject} onChange={(event) => setSubject(event.target.value)} required>
          <option value="">Choose…</option>
          {(agents.data ?? []).map((agent) => (
            <option key={agent.id} value={`agent:${agent.id}`}>
              {agent.hostname} ({shortId(agent.id)})
            </option>
          ))}
          {[...new Set((agents.data ?? []).flatMap((agent) => agent.groups))].map((group) => (
            <option key={group} value={`group:${group}`}>
              group {group}
            </option>
          ))}
        </select>
      </Field>
      <Field id={ids.scope} label="Scope" hint="e.g. read sftp://files.example.com:22/exports/**">
        <input id={ids.scope} className="mono" value={scope} onChange={(event) => setScope(event.target.value)} aria-describedby={`${ids.scope}-hint`} required />
      </Field>
      <Field id={ids.expires} label="Expires (optional)">
        <input id={ids.expires} type="datetime-local" value={expires} onChange={(event) => setExpires(event.target.value)} />
      </Field>
      <button type="submit" className="button primary" disabled={add.isPending || !subject || !scope}>
        Add grant
      </button>
      {add.isError && <Notice tone="bad">{errorMessage(add.error)}</Notice>}
    </form>
  );
}

function Explain() {
  const trpc = useTRPC();
  const agents = useAgents();
  const ids = { agent: useId(), scope: useId() };
  const [agentId, setAgentId] = useState('');
  const [scope, setScope] = useState('');
  const [asked, setAsked] = useState<{ agentId: string; scope: string } | null>(null);
  const verdict = useQuery({ ...trpc.grants.explain.queryOptions(asked ?? { agentId: '', scope: 'x' }), enabled: asked !== null });
  return (
    <section className="panel" aria-labelledby="explain-heading">
      <h2 id="explain-heading">Explain</h2>
      <p className="muted">Would this agent be allowed this scope now, and by which grant?</p>
      <form
        className="inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          setAsked({ agentId, scope });
        }}
      >
        <Field id={ids.agent} label="Agent">
          <select id={ids.agent} value={agentId} onChange={(event) => setAgentId(event.target.value)} required>
            <option value="">Choose…</option>
            {(agents.data ?? []).map((agent) => (
              <option key={agent.id} value={agent.id}>
                {agent.hostname} ({shortId(agent.id)})
              </option>
            ))}
          </select>
        </Field>
        <Field id={ids.scope} label="Scope to check">
          <input id={ids.scope} className="mono" value={scope} onChange={(event) => setScope(event.target.value)} required />
        </Field>
        <button type="submit" className="button secondary" disabled={!agentId || !scope}>
          Explain
        </button>
      </form>
      {asked && (
        <QueryView query={verdict} label="Checking">
          {(result) => (
            <Notice tone={result.allowed ? 'ok' : 'bad'}>
              <strong>{result.allowed ? 'Allowed' : 'Denied'}</strong>: <span className="mono">{result.scope}</span>. {result.reason}
              {result.grantId && <span className="muted"> (grant {shortId(result.grantId)})</span>}
            </Notice>
          )}
        </QueryView>
      )}
    </section>
  );
}

function LeastPrivilege() {
  const trpc = useTRPC();
  const report = useQuery(trpc.reports.leastPrivilege.queryOptions({ days: 30 }));
  return (
    <section className="panel" aria-labelledby="lp-heading">
      <h2 id="lp-heading">Least-privilege report, last 30 days</h2>
      <QueryView query={report} label="Building the report">
        {(data) =>
          data.agents.length === 0 ? (
            <Empty title="No agents to report on" />
          ) : (
            <div className="lp">
              {data.agents.map((agent) => (
                <article key={agent.agentId} className="card">
                  <h3>
                    {agent.hostname} <span className="muted small">{agent.runs} run(s)</span>
                  </h3>
                  {agent.unused.length === 0 && agent.used.length === 0 ? (
                    <p className="muted">No grants.</p>
                  ) : agent.unused.length > 0 ? (
                    <>
                      <p>
                        <Badge tone="warn">unused</Badge> granted, never needed: consider revoking
                      </p>
                      <ul className="plain-list mono">
                        {agent.unused.map((grant) => (
                          <li key={grant.grantId}>{grant.scope}</li>
                        ))}
                      </ul>
                    </>
                  ) : (
                    <p className="muted">Every grant was used.</p>
                  )}
                  {agent.used.map((grant) => (
                    <div key={grant.grantId}>
                      <p>
                        <Badge tone="ok">used</Badge> <span className="mono">{grant.scope}</span>; what runs needed:
                      </p>
                      <ul className="plain-list mono">
                        {grant.suggested.map((text) => (
                          <li key={text}>{text}</li>
                        ))}
                      </ul>
                    </div>
                  ))}
                  {agent.uncovered.length > 0 && (
                    <p>
                      <Badge tone="bad">uncovered</Badge> needed without a grant now: {agent.uncovered.join(', ')}
                    </p>
                  )}
                </article>
              ))}
            </div>
          )
        }
      </QueryView>
    </section>
  );
}
