import { useEffect, useId, useRef, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, CopyButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

export function AgentsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const agents = useQuery({ ...trpc.console.agents.queryOptions(), refetchInterval: 10_000 });
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const revoke = useMutation(
    trpc.agents.revoke.mutationOptions({
      onSuccess: (result) => {
        setMessage({ tone: 'ok', text: `Agent revoked; ${result.cancelledRuns} queued run(s) cancelled.` });
        void queryClient.invalidateQueries({ queryKey: trpc.console.agents.queryKey() });
      },
      onError: (error) => setMessage({ tone: 'bad', text: errorMessage(error) }),
    }),
  );
  return (
    <>
      <PageHeader
        title="Agents"
        description="On-prem agents connect outward to this control plane. Each holds its own key; revoking one refuses its next request."
        actions={
          <Can permission="agents:enroll">
            <EnrollWizard onEnrolled={() => void queryClient.invalidateQueries({ queryKey: trpc.console.agents.queryKey() })} />
          </Can>
        }
      />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      <QueryView query={agents} label="Loading agents">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No agents yet">Enroll one with a one-time token: the command runs on the host that will move the files.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Agents</caption>
                <thead>
                  <tr>
                    <th scope="col">Host</th>
                    <th scope="col">Status</th>
                    <th scope="col">Last heartbeat</th>
                    <th scope="col">Version</th>
                    <th scope="col">Proxy</th>
                    <th scope="col">Last error</th>
                    <th scope="col">Groups</th>
                    <th scope="col">Enrolled</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((agent) => (
                    <tr key={agent.id}>
                      <th scope="row">
                        {agent.hostname}
                        <div className="mono muted small">{agent.id}</div>
                      </th>
                      <td>
                        {agent.status !== 'active' ? (
                          <Badge tone="neutral">{agent.status}</Badge>
                        ) : agent.online ? (
                          <Badge tone="ok">online</Badge>
                        ) : (
                          <Badge tone="warn">offline</Badge>
                        )}
                      </td>
                      <td title={formatTime(agent.lastSeenAt)}>{formatAgo(agent.lastSeenAt)}</td>
                      <td className="mono">{agent.version}</td>
                      <td>{agent.report === null ? <span className="muted">not reported</span> : agent.report.proxy ? 'through a proxy' : 'direct'}</td>
                      <td>
                        {agent.report === null ? (
                          <span className="muted">not reported</span>
                        ) : agent.report.lastError === null ? (
                          <span className="muted">none</span>
                        ) : (
                          <span title={`reported ${formatTime(agent.report.reportedAt)}`}>{agent.report.lastError}</span>
                        )}
                      </td>
                      <td>{agent.groups.length === 0 ? <span className="muted">none</span> : agent.groups.map((group) => <Badge key={group} tone="neutral">{group}</Badge>)}</td>
                      <td>{formatTime(agent.enrolledAt)}</td>
                      <td>
                        {agent.status === 'active' && (
                          <Can permission="agents:write">
                            <ConfirmButton
                              label={`Revoke ${agent.hostname}`}
                              title={`Revoke ${agent.hostname}?`}
                              body={
                                <p>
                                  Its next request is refused and its queued runs are cancelled. There is no undo: to bring the host back, enroll it again
                                  with a new token.
                                </p>
                              }
                              confirmLabel="Revoke agent"
                              busy={revoke.isPending}
                              onConfirm={() => revoke.mutate({ id: agent.id })}
                            />
                          </Can>
                        )}
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

function useCountdown(until: string | null): string {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!until) return;
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, [until]);
  if (!until) return '';
  const left = Math.max(0, Math.round((new Date(until).getTime() - now) / 1_000));
  if (left === 0) return 'expired';
  return `${Math.floor(left / 60)} min ${String(left % 60).padStart(2, '0')} s left`;
}

/** Two steps: choose how long the token lives, then copy the exact command to run on the agent's host. */
function EnrollWizard({ onEnrolled }: { onEnrolled: () => void }) {
  const trpc = useTRPC();
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const ttlId = useId();
  const [ttl, setTtl] = useState(15);
  const create = useMutation(trpc.enrollment.createToken.mutationOptions());
  const countdown = useCountdown(create.data?.expiresAt ?? null);
  const close = () => {
    dialog.current?.close();
    if (create.data) onEnrolled();
    create.reset();
  };
  return (
    <>
      <button type="button" className="button primary" onClick={() => dialog.current?.showModal()}>
        Enroll an agent
      </button>
      <dialog ref={dialog} aria-labelledby={titleId} className="dialog wide" onClose={() => create.reset()}>
        <h2 id={titleId}>Enroll an agent</h2>
        <ol className="steps" aria-label="Steps">
          <li aria-current={create.data ? undefined : 'step'}>Create a one-time token</li>
          <li aria-current={create.data ? 'step' : undefined}>Run the command on the agent's host</li>
        </ol>
        {!create.data ? (
          <form
            onSubmit={(event) => {
              event.preventDefault();
              create.mutate({ ttlMinutes: ttl });
            }}
          >
            <Field id={ttlId} label="Token lifetime" hint="The token works once. Unused, it expires after this time.">
              <select id={ttlId} value={ttl} onChange={(event) => setTtl(Number(event.target.value))} aria-describedby={`${ttlId}-hint`}>
                <option value={5}>5 minutes</option>
                <option value={15}>15 minutes</option>
                <option value={30}>30 minutes</option>
              </select>
            </Field>
            {create.isError && <Notice tone="bad">{errorMessage(create.error)}</Notice>}
            <div className="dialog-actions">
              <button type="button" className="button secondary" onClick={close}>
                Cancel
              </button>
              <button type="submit" className="button primary" disabled={create.isPending}>
                {create.isPending ? 'Creating…' : 'Create token'}
              </button>
            </div>
          </form>
        ) : (
          <div>
            <p>
              On the host that will run the agent, with <code>airlock-agent</code> installed, run this command. It creates the agent's key (kept on that host)
              and redeems the token.
            </p>
            <div className="command">
              <pre aria-label="Enroll command" data-testid="enroll-command">
                <code>{create.data.command.text}</code>
              </pre>
              <CopyButton text={create.data.command.text} label="Copy command" />
            </div>
            <p>
              Expires {formatTime(create.data.expiresAt)} (<span role="timer">{countdown}</span>). This token is shown once.
            </p>
            <div className="dialog-actions">
              <button type="button" className="button primary" onClick={close}>
                Done
              </button>
            </div>
          </div>
        )}
      </dialog>
    </>
  );
}
