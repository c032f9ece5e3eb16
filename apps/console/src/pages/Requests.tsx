/**
 * The API request log: who called what, when, and with what outcome; never a body or a credential.
 * Filters and a time range narrow it, pages go back in time, and the filtered log exports as CSV or
 * JSON Lines. Owners and admins set how long it is kept.
 */
import { useId, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { requestCallerTypes, requestLogCsv, requestLogJsonl, type ListRequestsInput, type RequestLogRow } from '@airlock/protocol';
import { Badge, Empty, Field, Notice, PageHeader, QueryView } from '../components/ui.tsx';
import { formatTime } from '../format.ts';
import { Can } from '../session.tsx';
import { errorMessage, useTRPC } from '../trpc.ts';

const PAGE_SIZE = 100;
/** Export reads the filtered log page by page; a bound keeps a browser tab from holding millions of rows. */
const EXPORT_MAX_PAGES = 100;

type CallerType = (typeof requestCallerTypes)[number];

interface Filter {
  callerType?: CallerType;
  callerId?: string;
  procedure?: string;
  outcome?: string;
  sourceIp?: string;
  from?: string;
  to?: string;
}

function isCallerType(value: string): value is CallerType {
  return requestCallerTypes.some((type) => type === value);
}

/** The filter as the API takes it: empty fields dropped, local times as ISO instants. */
function inputOf(filter: Filter): ListRequestsInput {
  const input: ListRequestsInput = {};
  if (filter.callerType) input.callerType = filter.callerType;
  if (filter.callerId) input.callerId = filter.callerId;
  if (filter.procedure) input.procedure = filter.procedure;
  if (filter.outcome) input.outcome = filter.outcome;
  if (filter.sourceIp) input.sourceIp = filter.sourceIp;
  if (filter.from) input.from = new Date(filter.from).toISOString();
  if (filter.to) input.to = new Date(filter.to).toISOString();
  return input;
}

export function RequestsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const ids = { callerType: useId(), callerId: useId(), procedure: useId(), outcome: useId(), ip: useId(), from: useId(), to: useId() };
  const [draft, setDraft] = useState<Filter>({});
  const [filter, setFilter] = useState<Filter>({});
  // Keyset paging: the `before` of each page seen, so Previous can go back.
  const [pages, setPages] = useState<(string | undefined)[]>([undefined]);
  const before = pages[pages.length - 1];
  const rows = useQuery(trpc.requests.list.queryOptions({ ...inputOf(filter), limit: PAGE_SIZE, ...(before ? { before } : {}) }));
  const [exporting, setExporting] = useState<string | null>(null);

  const exportRows = async (format: 'csv' | 'jsonl') => {
    setExporting('Exporting…');
    try {
      const all: RequestLogRow[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < EXPORT_MAX_PAGES; page += 1) {
        const batch = await queryClient.fetchQuery(trpc.requests.list.queryOptions({ ...inputOf(filter), limit: 1000, ...(cursor ? { before: cursor } : {}) }));
        all.push(...batch.rows);
        if (batch.nextBefore === null) break;
        cursor = batch.nextBefore;
      }
      const text = format === 'csv' ? requestLogCsv(all) : requestLogJsonl(all);
      const url = URL.createObjectURL(new Blob([text], { type: format === 'csv' ? 'text/csv' : 'application/x-ndjson' }));
      const link = document.createElement('a');
      link.href = url;
      link.download = `airlock-requests-${new Date().toISOString().replace(/[:.]/g, '-')}.${format}`;
      link.click();
      URL.revokeObjectURL(url);
      setExporting(`Exported ${all.length} requests.`);
    } catch (error) {
      setExporting(errorMessage(error));
    }
  };

  const set = (key: keyof Filter) => (event: { target: { value: string } }) => setDraft({ ...draft, [key]: event.target.value });
  return (
    <>
      <PageHeader
        title="API requests"
        description="Every console, API key, OAuth client and agent request: time, caller, procedure, outcome, latency, source and request id. Never bodies or credentials. Privileged actions are in the audit trail."
        actions={
          <>
            <button type="button" className="button secondary" onClick={() => void exportRows('csv')}>
              Export CSV
            </button>
            <button type="button" className="button secondary" onClick={() => void exportRows('jsonl')}>
              Export JSONL
            </button>
          </>
        }
      />
      {exporting && <Notice tone="info">{exporting}</Notice>}
      <form
        className="panel inline-form"
        aria-label="Filter requests"
        onSubmit={(event) => {
          event.preventDefault();
          setFilter(draft);
          setPages([undefined]);
        }}
      >
        <Field id={ids.callerType} label="Caller type">
          <select id={ids.callerType} value={draft.callerType ?? ''} onChange={(event) => setDraft({ ...draft, callerType: isCallerType(event.target.value) ? event.target.value : undefined })}>
            <option value="">any</option>
            {requestCallerTypes.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>
        </Field>
        <Field id={ids.callerId} label="Caller id">
          <input id={ids.callerId} value={draft.callerId ?? ''} onChange={set('callerId')} />
        </Field>
        <Field id={ids.procedure} label="Procedure">
          <input id={ids.procedure} value={draft.procedure ?? ''} onChange={set('procedure')} placeholder="integrations.runNow" />
        </Field>
        <Field id={ids.outcome} label="Outcome" hint="ok, error or a code">
          <input id={ids.outcome} value={draft.outcome ?? ''} onChange={set('outcome')} />
        </Field>
        <Field id={ids.ip} label="Source IP">
          <input id={ids.ip} value={draft.sourceIp ?? ''} onChange={set('sourceIp')} />
        </Field>
        <Field id={ids.from} label="From">
          <input id={ids.from} type="datetime-local" value={draft.from ?? ''} onChange={set('from')} />
        </Field>
        <Field id={ids.to} label="Until">
          <input id={ids.to} type="datetime-local" value={draft.to ?? ''} onChange={set('to')} />
        </Field>
        <button type="submit" className="button primary">
          Apply
        </button>
      </form>
      <QueryView query={rows} label="Loading requests">
        {(page) =>
          page.rows.length === 0 ? (
            <Empty title="No requests match" />
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <caption className="visually-hidden">API requests</caption>
                  <thead>
                    <tr>
                      <th scope="col">Time</th>
                      <th scope="col">Caller</th>
                      <th scope="col">Procedure</th>
                      <th scope="col">Outcome</th>
                      <th scope="col">Latency</th>
                      <th scope="col">Source</th>
                      <th scope="col">User agent</th>
                      <th scope="col">Request id</th>
                    </tr>
                  </thead>
                  <tbody>
                    {page.rows.map((row) => (
                      <tr key={row.id}>
                        <td>{formatTime(row.at)}</td>
                        <td>
                          {row.callerType} <span className="mono">{row.callerId?.slice(0, 8) ?? ''}</span>
                        </td>
                        <td className="mono">{row.procedure}</td>
                        <td>
                          <Badge tone={row.outcome === 'OK' ? 'ok' : 'bad'}>
                            {row.status} {row.outcome}
                          </Badge>
                        </td>
                        <td>{row.latencyMs} ms</td>
                        <td className="mono">{row.sourceIp ?? ''}</td>
                        <td>{row.userAgent ?? ''}</td>
                        <td className="mono">{row.requestId}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div className="pager">
                <button type="button" className="button secondary" disabled={pages.length <= 1} onClick={() => setPages(pages.slice(0, -1))}>
                  Newer
                </button>
                <button type="button" className="button secondary" disabled={page.nextBefore === null} onClick={() => page.nextBefore !== null && setPages([...pages, page.nextBefore])}>
                  Older
                </button>
              </div>
            </>
          )
        }
      </QueryView>
      <Can permission="requests:write">
        <Retention />
      </Can>
    </>
  );
}

function Retention() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const id = useId();
  const current = useQuery(trpc.requests.retention.queryOptions());
  const [days, setDays] = useState<number | null>(null);
  const save = useMutation(trpc.requests.setRetention.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.requests.retention.queryKey() }) }));
  return (
    <form
      className="panel inline-form"
      aria-label="Request log retention"
      onSubmit={(event) => {
        event.preventDefault();
        if (days !== null) save.mutate({ retentionDays: days });
      }}
    >
      <Field id={id} label="Keep requests for (days)" hint={current.data ? `now ${current.data.retentionDays}${current.data.isDefault ? ' (default)' : ''}` : undefined}>
        <input id={id} type="number" min={1} max={3650} value={days ?? current.data?.retentionDays ?? 30} onChange={(event) => setDays(Number(event.target.value))} />
      </Field>
      <button type="submit" className="button primary" disabled={save.isPending || days === null}>
        Save retention
      </button>
      {save.isSuccess && <Notice tone="ok">Retention saved.</Notice>}
      {save.isError && <Notice tone="bad">{errorMessage(save.error)}</Notice>}
    </form>
  );
}
