import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { BytesChart } from '../components/BytesChart.tsx';
import { Badge, Empty, Notice, PageHeader, QueryView, runTone, type Tone } from '../components/ui.tsx';
import { formatAgo, formatBytes } from '../format.ts';
import { Link } from '../router.tsx';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

const OUTCOMES = ['succeeded', 'failed', 'running', 'queued', 'cancelled'] as const;

export function OverviewPage() {
  const trpc = useTRPC();
  const overview = useQuery({ ...trpc.console.overview.queryOptions(), refetchInterval: 15_000 });
  return (
    <>
      <PageHeader title="Overview" description="Agents, runs and data moved in the last 24 hours." />
      <QueryView query={overview} label="Loading the overview">
        {(data) => {
          const runsTotal = OUTCOMES.reduce((sum, outcome) => sum + data.runs[outcome], 0);
          const bytesTotal = data.bytesByHour.reduce((sum, point) => sum + point.bytes, 0);
          return (
            <>
              <section className="cards" aria-label="Summary">
                <article className="card">
                  <h2>Agents</h2>
                  <p className="metric">
                    <span className="metric-value">{data.agents.online}</span> online
                  </p>
                  <p className={data.agents.offline > 0 ? 'metric-warn' : 'muted'}>
                    {data.agents.offline} offline{data.agents.revoked > 0 ? ` · ${data.agents.revoked} revoked` : ''}
                  </p>
                  <Link to="/agents">Manage agents</Link>
                </article>
                <article className="card">
                  <h2>Runs, last 24 h</h2>
                  <p className="metric">
                    <span className="metric-value">{runsTotal}</span> runs
                  </p>
                  <ul className="outcomes" aria-label="Runs by outcome">
                    {OUTCOMES.map((outcome) => (
                      <li key={outcome}>
                        <Badge tone={runTone(outcome)}>{outcome}</Badge> {data.runs[outcome]}
                      </li>
                    ))}
                  </ul>
                </article>
                <article className="card">
                  <h2>Data delivered, last 24 h</h2>
                  <p className="metric">
                    <span className="metric-value">{formatBytes(bytesTotal)}</span>
                  </p>
                  <p className="muted">ciphertext, as the agents' receipts report it</p>
                </article>
              </section>
              <section className="panel" aria-labelledby="chart-heading">
                <h2 id="chart-heading">Bytes moved over time</h2>
                {bytesTotal === 0 ? <Empty title="No data moved in the last 24 hours">Runs that deliver files show up here.</Empty> : <BytesChart series={data.bytesByHour} />}
              </section>
              <Can permission="alerts:read">
                <OpenAlerts />
              </Can>
              <Attention />
            </>
          );
        }}
      </QueryView>
    </>
  );
}

/** The alerts of the day: failed runs and refused requests. */
function Attention() {
  const trpc = useTRPC();
  const runs = useQuery(trpc.runs.list.queryOptions({ limit: 50 }));
  const since = new Date(Date.now() - 86_400_000).toISOString();
  return (
    <section className="panel" aria-labelledby="attention-heading">
      <h2 id="attention-heading">Needs attention</h2>
      <QueryView query={runs} label="Loading recent runs">
        {(list) => {
          const failed = list.filter((run) => run.status === 'failed' && run.createdAt >= since);
          return (
            <>
              {failed.length === 0 ? (
                <p className="muted">No failed runs in the last 24 hours.</p>
              ) : (
                <ul className="plain-list">
                  {failed.map((run) => (
                    <li key={run.id}>
                      <Badge tone="bad">failed</Badge> <Link to={`/runs?run=${run.id}`}>Run {run.id.slice(0, 8)}</Link>{' '}
                      <span className="muted">
                        {run.errorClass ?? 'unknown error'} · {formatAgo(run.finishedAt ?? run.createdAt)}
                      </span>
                    </li>
                  ))}
                </ul>
              )}
              <Can permission="audit:read">
                <p>
                  <Link to="/audit?outcome=denied">Refused requests in the audit trail</Link>
                </p>
              </Can>
            </>
          );
        }}
      </QueryView>
    </section>
  );
}

const SEVERITY_TONE: Record<'info' | 'warning' | 'critical', Tone> = { critical: 'bad', warning: 'warn', info: 'info' };

/** Alerts not yet resolved, newest first; acknowledging one says someone is on it. */
function OpenAlerts() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const alerts = useQuery({ ...trpc.alerts.list.queryOptions({ state: 'unresolved', limit: 20 }), refetchInterval: 15_000 });
  const acknowledge = useMutation(
    trpc.alerts.acknowledge.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.alerts.list.queryKey() }) }),
  );
  return (
    <section className="panel" aria-labelledby="alerts-heading">
      <h2 id="alerts-heading">Open alerts</h2>
      {acknowledge.isError && <Notice tone="bad">{errorMessage(acknowledge.error)}</Notice>}
      <QueryView query={alerts} label="Loading alerts">
        {(list) =>
          list.length === 0 ? (
            <p className="muted">No open alerts.</p>
          ) : (
            <ul className="plain-list">
              {list.map((alert) => (
                <li key={alert.id}>
                  <Badge tone={SEVERITY_TONE[alert.severity]}>{alert.severity}</Badge> {alert.summary}{' '}
                  <span className="muted small">
                    {alert.kind} · {alert.count > 1 ? `${alert.count} times, ` : ''}last {formatAgo(alert.lastSeenAt)} · {alert.state}
                  </span>{' '}
                  {alert.state === 'open' && (
                    <Can permission="alerts:write">
                      <button type="button" className="button secondary small" onClick={() => acknowledge.mutate({ id: alert.id })}>
                        Acknowledge
                      </button>
                    </Can>
                  )}
                </li>
              ))}
            </ul>
          )
        }
      </QueryView>
    </section>
  );
}
