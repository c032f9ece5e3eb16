import { useQuery } from '@tanstack/react-query';
import { Badge, Empty, PageHeader, QueryView, type Tone } from '../components/ui.tsx';
import { formatTime } from '../format.ts';
import { useTRPC } from '../trpc.ts';

function stateTone(state: string): Tone {
  switch (state) {
    case 'installed':
    case 'completed':
      return 'ok';
    case 'failed':
    case 'halted':
      return 'bad';
    case 'offered':
    case 'installing':
    case 'active':
      return 'info';
    default:
      return 'neutral';
  }
}

/** Rollouts of signed agent releases: each ring's progress, and where each agent stands. */
export function UpdatesPage() {
  const trpc = useTRPC();
  const rollouts = useQuery({ ...trpc.rollouts.list.queryOptions(), refetchInterval: 10_000 });
  return (
    <>
      <PageHeader
        title="Updates"
        description="Signed agent releases, rolled out to the canary group first and then to the rest. Agents install only what the release key signed; publish and roll out with airlock release and airlock rollout."
      />
      <QueryView query={rollouts} label="Loading rollouts">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No rollouts yet">Publish a signed release with airlock release publish, then roll it out with airlock rollout create.</Empty>
          ) : (
            list.map((rollout) => (
              <section key={rollout.id} className="card" aria-label={`Rollout of ${rollout.version}`}>
                <h2>
                  Version {rollout.version} <Badge tone={stateTone(rollout.state)}>{rollout.state}</Badge>
                </h2>
                <p className="muted small">
                  {rollout.progress.installed} of {rollout.progress.total} installed, {rollout.progress.installing} installing, {rollout.progress.failed} failed · window {formatTime(rollout.startsAt)} to {formatTime(rollout.endsAt)}
                  {rollout.haltedReason ? ` · ${rollout.haltedReason}` : ''}
                </p>
                <div className="table-wrap">
                  <table>
                    <caption className="visually-hidden">Agents in the rollout of {rollout.version}</caption>
                    <thead>
                      <tr>
                        <th scope="col">Host</th>
                        <th scope="col">Ring</th>
                        <th scope="col">State</th>
                        <th scope="col">From version</th>
                        <th scope="col">Reason</th>
                      </tr>
                    </thead>
                    <tbody>
                      {rollout.agents.map((agent) => (
                        <tr key={agent.agentId}>
                          <th scope="row">
                            {agent.hostname}
                            <div className="mono muted small">{agent.agentId}</div>
                          </th>
                          <td>{agent.ring}</td>
                          <td>
                            <Badge tone={stateTone(agent.state)}>{agent.state}</Badge>
                          </td>
                          <td className="mono">{agent.fromVersion ?? '—'}</td>
                          <td>{agent.reason ?? ''}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </section>
            ))
          )
        }
      </QueryView>
    </>
  );
}
