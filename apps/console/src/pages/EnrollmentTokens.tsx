import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, ConfirmButton, Empty, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime } from '../format.ts';
import { errorMessage, useTRPC } from '../trpc.ts';

/** The tenant's one-time enrollment tokens (never the token itself, which is stored hashed); an unused one can be revoked. */
export function EnrollmentTokensPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const tokens = useQuery({ ...trpc.enrollment.listTokens.queryOptions(), refetchInterval: 15_000 });
  const [message, setMessage] = useState<{ tone: 'ok' | 'bad'; text: string } | null>(null);
  const revoke = useMutation(
    trpc.enrollment.revokeToken.mutationOptions({
      onSuccess: () => {
        setMessage({ tone: 'ok', text: 'Token revoked: it can no longer enroll an agent.' });
        void queryClient.invalidateQueries({ queryKey: trpc.enrollment.listTokens.queryKey() });
      },
      onError: (error) => setMessage({ tone: 'bad', text: errorMessage(error) }),
    }),
  );
  return (
    <>
      <PageHeader title="Enrollment tokens" description="One-time tokens that enroll an agent. Create one from the Agents page; revoke any that should not be used." />
      {message && <Notice tone={message.tone}>{message.text}</Notice>}
      <QueryView query={tokens} label="Loading enrollment tokens">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No enrollment tokens">Tokens made to enroll agents appear here, with whether they were used.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Enrollment tokens</caption>
                <thead>
                  <tr>
                    <th scope="col">Token</th>
                    <th scope="col">State</th>
                    <th scope="col">Created</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Agent</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((token) => (
                    <tr key={token.id}>
                      <th scope="row">
                        <span className="mono small">{token.id}</span>
                        <div className="muted small">by {token.createdBy}</div>
                      </th>
                      <td>
                        <Badge tone={token.state === 'usable' ? 'ok' : token.state === 'used' ? 'neutral' : 'warn'}>{token.state}</Badge>
                      </td>
                      <td>{formatTime(token.createdAt)}</td>
                      <td>{formatTime(token.expiresAt)}</td>
                      <td className="mono small">{token.agentId ?? <span className="muted">none</span>}</td>
                      <td>
                        {token.state === 'usable' && (
                          <ConfirmButton
                            label="Revoke token"
                            title="Revoke this enrollment token?"
                            body={<p>No agent can enroll with it afterwards. Agents it already enrolled keep working.</p>}
                            confirmLabel="Revoke token"
                            busy={revoke.isPending}
                            onConfirm={() => revoke.mutate({ id: token.id })}
                          />
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
