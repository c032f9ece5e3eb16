import { useId, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { Badge, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime } from '../format.ts';
import { useLocation } from '../router.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

const PAGE_SIZE = 50;
/** Export reads the filtered trail page by page; a bound keeps a browser tab from holding millions of events. */
const EXPORT_MAX_PAGES = 200;

type Outcome = 'success' | 'failure' | 'denied';

interface Filter {
  action?: string;
  outcome?: Outcome;
  actor?: string;
  target?: string;
  since?: string;
  until?: string;
}

function isOutcome(value: string | null): value is Outcome {
  return value === 'success' || value === 'failure' || value === 'denied';
}

function cleanFilter(filter: Filter): Filter {
  return Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined && value !== '')) as Filter;
}

export function AuditPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { search } = useLocation();
  const initialOutcome = search.get('outcome');
  const [filter, setFilter] = useState<Filter>(cleanFilter({ outcome: isOutcome(initialOutcome) ? initialOutcome : undefined, target: search.get('target') ?? undefined }));
  const [draft, setDraft] = useState<Filter>(filter);
  // Keyset pagination: the afterSeq of each page seen, so Previous can go back.
  const [pages, setPages] = useState<number[]>([0]);
  const afterSeq = pages[pages.length - 1] ?? 0;
  const events = useQuery(trpc.audit.list.queryOptions({ ...filter, afterSeq, limit: PAGE_SIZE }));
  const [exporting, setExporting] = useState<string | null>(null);
  const ids = { action: useId(), outcome: useId(), actor: useId(), target: useId(), since: useId(), until: useId() };

  const exportEvents = async () => {
    setExporting('Exporting…');
    try {
      const lines: string[] = [];
      let after = 0;
      for (let page = 0; page < EXPORT_MAX_PAGES; page++) {
        const batch = await queryClient.fetchQuery(trpc.audit.list.queryOptions({ ...filter, afterSeq: after, limit: 1000 }));
        for (const event of batch) lines.push(JSON.stringify(event));
        const last = batch.at(-1);
        if (!last || batch.length < 1000) break;
        after = last.seq;
      }
      const url = URL.createObjectURL(new Blob([`${lines.join('\n')}\n`], { type: 'application/x-ndjson' }));
      const link = document.createElement('a');
      link.href = url;
      link.download = `airlock-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setExporting(`Exported ${lines.length} event(s).`);
    } catch (error) {
      setExporting(`Export failed: ${errorMessage(error)}`);
    }
  };

  return (
    <>
      <PageHeader
        title="Audit"
        description="Every privileged action and every refusal, hash-chained and checkpointed with the control plane's signing key."
        actions={
          <button type="button" className="button secondary" onClick={() => void exportEvents()}>
            Export (JSON Lines)
          </button>
        }
      />
      {exporting && <Notice tone="info">{exporting}</Notice>}
      <ChainStatus />
      <form
        className="panel filters"
        aria-label="Filter events"
        onSubmit={(event) => {
          event.preventDefault();
          setFilter(cleanFilter(draft));
          setPages([0]);
        }}
      >
        <Field id={ids.action} label="Action">
          <input id={ids.action} value={draft.action ?? ''} placeholder="e.g. run-complete" onChange={(event) => setDraft({ ...draft, action: event.target.value })} />
        </Field>
        <Field id={ids.outcome} label="Outcome">
          <select id={ids.outcome} value={draft.outcome ?? ''} onChange={(event) => setDraft({ ...draft, outcome: isOutcome(event.target.value) ? event.target.value : undefined })}>
            <option value="">Any</option>
            <option value="success">success</option>
            <option value="failure">failure</option>
            <option value="denied">denied</option>
          </select>
        </Field>
        <Field id={ids.actor} label="Actor">
          <input id={ids.actor} value={draft.actor ?? ''} placeholder="agent or agent:<id>" onChange={(event) => setDraft({ ...draft, actor: event.target.value })} />
        </Field>
        <Field id={ids.target} label="Target">
          <input id={ids.target} value={draft.target ?? ''} placeholder="an id" onChange={(event) => setDraft({ ...draft, target: event.target.value })} />
        </Field>
        <Field id={ids.since} label="Since">
          <input id={ids.since} type="datetime-local" onChange={(event) => setDraft({ ...draft, since: event.target.value ? new Date(event.target.value).toISOString() : undefined })} />
        </Field>
        <Field id={ids.until} label="Until">
          <input id={ids.until} type="datetime-local" onChange={(event) => setDraft({ ...draft, until: event.target.value ? new Date(event.target.value).toISOString() : undefined })} />
        </Field>
        <div className="filter-actions">
          <button type="submit" className="button primary">
            Apply filters
          </button>
        </div>
      </form>
      <QueryView query={events} label="Loading events">
        {(list) => (
          <>
            {list.length === 0 ? (
              <Empty title="No events match">Widen the filters or clear them.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <caption className="visually-hidden">Audit events, oldest first</caption>
                  <thead>
                    <tr>
                      <th scope="col">Seq</th>
                      <th scope="col">Time</th>
                      <th scope="col">Action</th>
                      <th scope="col">Outcome</th>
                      <th scope="col">Actor</th>
                      <th scope="col">Target</th>
                      <th scope="col">Details</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((event) => (
                      <tr key={event.seq}>
                        <td className="mono">{event.seq}</td>
                        <td>{formatTime(event.at)}</td>
                        <td className="mono nowrap">{event.action}</td>
                        <td>
                          <Badge tone={event.outcome === 'success' ? 'ok' : event.outcome === 'denied' ? 'bad' : 'warn'}>{event.outcome}</Badge>
                        </td>
                        <td className="mono small">
                          {event.actor.type}
                          {event.actor.id ? `:${event.actor.id}` : ''}
                        </td>
                        <td className="mono small">{event.target ?? '—'}</td>
                        <td>
                          <details>
                            <summary>meta</summary>
                            <pre className="meta">{JSON.stringify(event.meta, null, 2)}</pre>
                          </details>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <nav className="pager" aria-label="Pages">
              <button type="button" className="button secondary" disabled={pages.length <= 1} onClick={() => setPages(pages.slice(0, -1))}>
                Previous page
              </button>
              <span className="muted">Page {pages.length}</span>
              <button
                type="button"
                className="button secondary"
                disabled={list.length < PAGE_SIZE}
                onClick={() => {
                  const last = list.at(-1);
                  if (last) setPages([...pages, last.seq]);
                }}
              >
                Next page
              </button>
            </nav>
          </>
        )}
      </QueryView>
    </>
  );
}

function ChainStatus() {
  const trpc = useTRPC();
  const latest = useQuery(trpc.audit.latestCheckpoint.queryOptions());
  const verify = useQuery({ ...trpc.console.verifyAudit.queryOptions(), enabled: false, staleTime: Infinity });
  return (
    <section className="panel chain" aria-labelledby="chain-heading">
      <h2 id="chain-heading">Chain verification</h2>
      <QueryView query={latest} label="Loading the latest checkpoint">
        {(latestCheckpoint) =>
          latestCheckpoint ? (
            <p>
              {/* This tenant's own chain head only: the checkpoint covers every tenant's, each behind its audit path. */}
              Latest signed checkpoint: number <span className="mono">{latestCheckpoint.checkpoint.number}</span>, this tenant&apos;s chain at seq{' '}
              <span className="mono">{latestCheckpoint.proof?.leaf.seq ?? '-'}</span>, {formatTime(latestCheckpoint.checkpoint.at)}, key{' '}
              <span className="mono">{latestCheckpoint.checkpoint.keyId}</span>.
            </p>
          ) : (
            <p className="muted">No checkpoint signed yet; the control plane signs one periodically when the chain moves.</p>
          )
        }
      </QueryView>
      <div className="row">
        <button type="button" className="button secondary" onClick={() => void verify.refetch()} disabled={verify.isFetching}>
          {verify.isFetching ? 'Verifying…' : 'Verify the chain now'}
        </button>
        <div aria-live="polite">
          {verify.isError && <Notice tone="bad">{errorMessage(verify.error)}</Notice>}
          {verify.data &&
            (verify.data.ok ? (
              <Notice tone="ok">
                Verified: the chain holds from genesis and {verify.data.checkpoints} signed checkpoint(s) match ({formatTime(verify.data.checkedAt)}).
              </Notice>
            ) : (
              <Notice tone="bad">
                The chain does not verify ({formatTime(verify.data.checkedAt)}). Run <code>airlock audit verify</code> on the server for where and why.
              </Notice>
            ))}
        </div>
      </div>
    </section>
  );
}
