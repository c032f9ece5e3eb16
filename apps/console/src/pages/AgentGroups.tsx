import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatAgo, formatTime } from '../format.ts';
import { Can, useSession } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

/**
 * Agent groups: a group's grants apply to each member, and a group's run goes to a healthy member.
 * Each member's health is shown as group dispatch sees it.
 */
export function AgentGroupsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const groups = useQuery({ ...trpc.groups.list.queryOptions(), refetchInterval: 10_000 });
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.groups.list.queryKey() });
  const canWrite = useSession().can('scopes:write');
  const remove = useMutation(
    trpc.groups.removeAgent.mutationOptions({
      onSuccess: (_, removed) => {
        setMessage({ tone: 'ok', text: `Agent removed from ${removed.group}: the group's grants no longer apply to it.` });
        refresh();
      },
      onError: (error) => setMessage({ tone: 'bad', text: errorMessage(error) }),
    }),
  );
  return (
    <>
      <PageHeader title="Agent groups" description="A group's grants apply to every member; a run queued for a group goes to whichever healthy member asks first." />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      <Can permission="scopes:write">
        <CreateGroup
          onDone={(text, tone) => {
            setMessage({ tone, text });
            refresh();
          }}
        />
      </Can>
      <QueryView query={groups} label="Loading agent groups">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No agent groups">Create one, then add agents to it.</Empty>
          ) : (
            <>
              {list.map((group) => (
                <section key={group.id} className="panel" aria-label={`Group ${group.name}`}>
                  <h2>{group.name}</h2>
                  <p className="muted small">
                    Created {formatTime(group.createdAt)}; {group.members.filter((member) => member.healthy).length} of {group.members.length} member(s) healthy.
                  </p>
                  {group.members.length === 0 ? (
                    <p className="muted">No members yet.</p>
                  ) : (
                    <table>
                      <caption className="visually-hidden">Members of {group.name}</caption>
                      <thead>
                        <tr>
                          <th scope="col">Agent</th>
                          <th scope="col">Health</th>
                          <th scope="col">Last heartbeat</th>
                          {canWrite && (
                            <th scope="col">
                              <span className="visually-hidden">Actions</span>
                            </th>
                          )}
                        </tr>
                      </thead>
                      <tbody>
                        {group.members.map((member) => (
                          <tr key={member.agentId}>
                            <th scope="row">
                              {member.hostname}
                              <div className="mono muted small">{member.agentId}</div>
                            </th>
                            <td>
                              {member.status !== 'active' ? (
                                <Badge tone="neutral">{member.status}</Badge>
                              ) : member.healthy ? (
                                <Badge tone="ok">healthy</Badge>
                              ) : member.online ? (
                                <Badge tone="warn">late</Badge>
                              ) : (
                                <Badge tone="bad">offline</Badge>
                              )}
                            </td>
                            <td title={formatTime(member.lastSeenAt)}>{formatAgo(member.lastSeenAt)}</td>
                            {canWrite && (
                              <td>
                                <ConfirmButton
                                  label={`Remove ${member.hostname} from ${group.name}`}
                                  title={`Remove ${member.hostname} from ${group.name}?`}
                                  body={<p>The group's grants stop applying to this agent, and the group's runs stop going to it. The agent itself and its own grants stay.</p>}
                                  confirmLabel="Remove from group"
                                  busy={remove.isPending}
                                  onConfirm={() => remove.mutate({ group: group.name, agentId: member.agentId })}
                                />
                              </td>
                            )}
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  )}
                  <Can permission="scopes:write">
                    <AddMember
                      group={group.name}
                      members={group.members.map((member) => member.agentId)}
                      onDone={(text, tone) => {
                        setMessage({ tone, text });
                        refresh();
                      }}
                    />
                  </Can>
                </section>
              ))}
            </>
          )
        }
      </QueryView>
    </>
  );
}

function CreateGroup({ onDone }: { onDone: (text: string, tone: 'ok' | 'bad') => void }) {
  const trpc = useTRPC();
  const id = useId();
  const [name, setName] = useState('');
  const create = useMutation(
    trpc.groups.create.mutationOptions({
      onSuccess: (group) => {
        setName('');
        onDone(`Group ${group.name} created.`, 'ok');
      },
      onError: (error) => onDone(errorMessage(error), 'bad'),
    }),
  );
  return (
    <form
      className="panel inline-form"
      aria-label="Create an agent group"
      onSubmit={(event) => {
        event.preventDefault();
        create.mutate({ name });
      }}
    >
      <Field id={id} label="Group name">
        <input id={id} value={name} onChange={(event) => setName(event.target.value)} maxLength={100} required />
      </Field>
      <button type="submit" className="button primary" disabled={create.isPending || name.trim() === ''}>
        Create group
      </button>
    </form>
  );
}

function AddMember({ group, members, onDone }: { group: string; members: string[]; onDone: (text: string, tone: 'ok' | 'bad') => void }) {
  const trpc = useTRPC();
  const id = useId();
  const agents = useQuery(trpc.console.agents.queryOptions());
  const candidates = (agents.data ?? []).filter((agent) => agent.status === 'active' && !members.includes(agent.id));
  const [agentId, setAgentId] = useState('');
  const add = useMutation(
    trpc.groups.addAgent.mutationOptions({
      onSuccess: () => {
        setAgentId('');
        onDone(`Agent added to ${group}.`, 'ok');
      },
      onError: (error) => onDone(errorMessage(error), 'bad'),
    }),
  );
  if (candidates.length === 0) return null;
  return (
    <form
      className="inline-form"
      aria-label={`Add an agent to ${group}`}
      onSubmit={(event) => {
        event.preventDefault();
        if (agentId !== '') add.mutate({ group, agentId });
      }}
    >
      <Field id={id} label={`Agent to add to ${group}`}>
        <select id={id} value={agentId} onChange={(event) => setAgentId(event.target.value)} required>
          <option value="">Choose an agent</option>
          {candidates.map((agent) => (
            <option key={agent.id} value={agent.id}>
              {agent.hostname} ({agent.id.slice(0, 8)})
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" className="button secondary" disabled={add.isPending || agentId === ''}>
        Add to {group}
      </button>
    </form>
  );
}
