import { useQuery } from '@tanstack/react-query';
import { describeSkipReason } from '@airlock/protocol';
import { Badge, Empty, PageHeader, QueryView, runTone } from '../components/ui.tsx';
import { formatAgo, formatBytes, formatDuration, formatFingerprint, formatRate, formatTime, shortId } from '../format.ts';
import { Link, useLocation } from '../router.tsx';
import { useTRPC } from '../trpc.ts';

const ACTIVE = new Set(['queued', 'running']);

export function RunsPage() {
  const trpc = useTRPC();
  const { search } = useLocation();
  const selected = search.get('run');
  const integrations = useQuery(trpc.integrations.list.queryOptions());
  const runs = useQuery({
    ...trpc.runs.list.queryOptions({ limit: 100 }),
    // Live while anything is in flight; a calm poll otherwise.
    refetchInterval: (query) => (query.state.data?.some((run) => ACTIVE.has(run.status)) ? 1_000 : 10_000),
  });
  const nameOf = (id: string) => integrations.data?.find((integration) => integration.id === id)?.name ?? shortId(id);
  return (
    <>
      <PageHeader title="Runs" description="Every run with its outcome. A finished run carries the agent's receipt: hashes, recipients and timings, never contents." />
      {selected && <RunDetail id={selected} nameOf={nameOf} />}
      <QueryView query={runs} label="Loading runs">
        {(list) =>
          list.length === 0 ? (
            <Empty title="No runs yet">Start one from Integrations with “Run now”, or give an integration a schedule.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Runs, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Run</th>
                    <th scope="col">Integration</th>
                    <th scope="col">Status</th>
                    <th scope="col">Progress</th>
                    <th scope="col">Requested</th>
                    <th scope="col">Duration</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((run) => (
                    <tr key={run.id} className={run.id === selected ? 'selected' : undefined}>
                      <th scope="row">
                        <Link to={`/runs?run=${run.id}`}>
                          <span className="mono">{shortId(run.id)}</span>
                          <span className="visually-hidden"> details</span>
                        </Link>
                      </th>
                      <td>
                        {nameOf(run.integrationId)} <span className="muted">v{run.integrationVersion}</span>
                      </td>
                      <td>
                        <Badge tone={runTone(run.status)}>{run.status}</Badge>
                        {run.errorClass && <span className="muted small" title={run.reason ?? undefined}> {run.errorClass}</span>}
                      </td>
                      <td>
                        <Progress run={run} />
                      </td>
                      <td title={formatTime(run.createdAt)}>{formatAgo(run.createdAt)}</td>
                      <td>{run.claimedAt && run.finishedAt ? formatDuration(Date.parse(run.finishedAt) - Date.parse(run.claimedAt)) : '—'}</td>
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

interface RunLike {
  status: string;
  claimedAt: string | null;
  report: { bytesIn: number; bytesOut: number; files: unknown[] } | null;
  progress: { bytesIn: number; bytesOut: number; filesDone: number; filesTotal?: number; at: string | null } | null;
}

function Progress({ run }: { run: RunLike }) {
  if (run.report) {
    return (
      <span>
        {formatBytes(run.report.bytesIn)} in · {formatBytes(run.report.bytesOut)} out · {run.report.files.length} file(s)
      </span>
    );
  }
  if (run.status !== 'running') return <span className="muted">—</span>;
  const progress = run.progress;
  if (!progress) return <span className="muted">starting…</span>;
  const elapsed = progress.at && run.claimedAt ? (Date.parse(progress.at) - Date.parse(run.claimedAt)) / 1_000 : 0;
  const rate = elapsed > 0 ? progress.bytesIn / elapsed : 0;
  return (
    <span aria-live="polite">
      {formatBytes(progress.bytesIn)} read · {formatBytes(progress.bytesOut)} written · {rate > 0 ? formatRate(rate) : '…'} · {progress.filesDone}
      {progress.filesTotal !== undefined ? `/${progress.filesTotal}` : ''} file(s)
    </span>
  );
}

function RunDetail({ id, nameOf }: { id: string; nameOf: (id: string) => string }) {
  const trpc = useTRPC();
  const run = useQuery({
    ...trpc.runs.get.queryOptions({ id }),
    refetchInterval: (query) => (query.state.data && ACTIVE.has(query.state.data.status) ? 1_000 : false),
  });
  return (
    <section className="panel" aria-labelledby="run-detail-heading">
      <QueryView query={run} label="Loading the run">
        {(data) => (
          <>
            <h2 id="run-detail-heading">
              Run <span className="mono">{shortId(data.id)}</span> of {nameOf(data.integrationId)} <Badge tone={runTone(data.status)}>{data.status}</Badge>
            </h2>
            <dl className="facts">
              <dt>Requested</dt>
              <dd>
                {formatTime(data.createdAt)} by <span className="mono">{data.requestedBy}</span>
              </dd>
              <dt>Claimed by the agent</dt>
              <dd>{formatTime(data.claimedAt)}</dd>
              <dt>Finished</dt>
              <dd>{formatTime(data.finishedAt)}</dd>
              {data.errorClass && (
                <>
                  <dt>Error class</dt>
                  <dd>{data.errorClass}</dd>
                </>
              )}
              {data.reason && (
                <>
                  <dt>Reason</dt>
                  <dd data-testid="run-reason">{data.reason}</dd>
                </>
              )}
              <dt>Progress</dt>
              <dd>
                <Progress run={data} />
              </dd>
            </dl>
            {data.report && <Receipt report={data.report} />}
          </>
        )}
      </QueryView>
    </section>
  );
}

interface ReportLike {
  startedAt: string;
  finishedAt: string;
  bytesIn: number;
  bytesOut: number;
  recipientFingerprints: string[];
  signerFingerprint?: string;
  skipped: number;
  deferred: number;
  skippedNames?: { count: number; entries: Array<{ directory: string; name: string; reason: string }> };
  files: Array<{ sourcePath: string; bytesIn: number; bytesOut: number; plaintextHmac: string; ciphertextSha256: string; durationMs: number }>;
}

function Receipt({ report }: { report: ReportLike }) {
  return (
    <div className="receipt">
      <h3>Receipt</h3>
      <dl className="facts">
        <dt>Agent time</dt>
        <dd>
          {formatTime(report.startedAt)} → {formatTime(report.finishedAt)} ({formatDuration(Date.parse(report.finishedAt) - Date.parse(report.startedAt))})
        </dd>
        <dt>Bytes</dt>
        <dd>
          {formatBytes(report.bytesIn)} plaintext in, {formatBytes(report.bytesOut)} ciphertext out
        </dd>
        <dt>Recipients</dt>
        <dd>
          <ul className="plain-list mono">
            {report.recipientFingerprints.map((fingerprint) => (
              <li key={fingerprint}>{formatFingerprint(fingerprint)}</li>
            ))}
          </ul>
        </dd>
        {report.signerFingerprint && (
          <>
            <dt>Signed by the agent's key</dt>
            <dd className="mono">{formatFingerprint(report.signerFingerprint)}</dd>
          </>
        )}
        <dt>Skipped / deferred</dt>
        <dd>
          {report.skipped} already delivered, {report.deferred} still changing
          {report.skippedNames && <>, {report.skippedNames.count} left in place because of their name</>}
        </dd>
      </dl>
      {report.skippedNames && <SkippedNames skipped={report.skippedNames} />}
      {report.files.length === 0 ? (
        <p className="muted">No file was delivered in this run.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption>Delivered files</caption>
            <thead>
              <tr>
                <th scope="col">Source path</th>
                <th scope="col">Size in / out</th>
                <th scope="col">Plaintext HMAC (agent-keyed)</th>
                <th scope="col">SHA-256 ciphertext</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {report.files.map((file) => (
                <tr key={`${file.sourcePath}:${file.ciphertextSha256}`}>
                  <th scope="row" className="mono">
                    {file.sourcePath}
                  </th>
                  <td>
                    {formatBytes(file.bytesIn)} / {formatBytes(file.bytesOut)}
                  </td>
                  <td className="mono hash">{file.plaintextHmac}</td>
                  <td className="mono hash">{file.ciphertextSha256}</td>
                  <td>{formatDuration(file.durationMs)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

/** Files the agent would have sent but could not name safely: they stay on the source until renamed. */
function SkippedNames({ skipped }: { skipped: NonNullable<ReportLike['skippedNames']> }) {
  return (
    <div className="table-wrap">
      <table>
        <caption>
          Left in place because of their name ({skipped.count}
          {skipped.count > skipped.entries.length ? `, first ${skipped.entries.length} shown` : ''}). Bytes that are not UTF-8 and control characters appear
          as %XX, or as � where the source gave no bytes; rename the files on the source to have them sent.
        </caption>
        <thead>
          <tr>
            <th scope="col">Directory</th>
            <th scope="col">Name</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {skipped.entries.map((entry) => (
            <tr key={`${entry.directory}/${entry.name}`}>
              <td className="mono">{entry.directory}</td>
              <th scope="row" className="mono">
                {entry.name}
              </th>
              <td>{describeSkipReason(entry.reason)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
