/**
 * Jobs for the agent's real data path (`runJob` with the built-in connectors) in benchmarks and
 * fault tests: an SFTP source, a local-folder or SFTP destination, the local policy that allows
 * exactly that, and a secrets resolver holding the SSH client key.
 */
import { randomUUID } from 'node:crypto';
import { builtInConnectors, LocalPolicy, type runJob } from '@airlock/agent';

export type Job = Parameters<typeof runJob>[0];
export type RunReport = Awaited<ReturnType<typeof runJob>>;
export type TransferDeps = Parameters<typeof runJob>[1];

/** The SFTP destination connector's reference, once it is registered. */
const SFTP_DESTINATION = 'sftp@1';
const LOCAL_DESTINATION = 'local@1';
const CREDENTIAL_REF = 'bench-sshd';
/** A well-formed pin for probing the policy; never connected to. */
const PROBE_HOST_KEY = `SHA256:${'A'.repeat(43)}`;

export interface SftpEndpoint {
  /** Where the agent connects on 127.0.0.1: the server itself or a proxy in front of it. */
  readonly port: number;
  readonly hostKey: string;
}

export type DestinationSpec = { kind: 'local'; directory: string } | ({ kind: 'sftp'; directory: string } & SftpEndpoint);

export interface JobSpec {
  readonly source: SftpEndpoint & { path: string };
  readonly destination: DestinationSpec;
  readonly recipientPublicKey: string;
  /** Its fingerprint, which the generated policy pins. */
  readonly recipientFingerprint: string;
}

export interface PreparedJob {
  readonly job: Job;
  /** The local policy, as the agent's policy file would hold it (JSON is YAML). */
  readonly policyText: string;
  /** The credential reference both SFTP ends use. */
  readonly credentialRef: string;
}

function sftpConfig(endpoint: SftpEndpoint): Record<string, unknown> {
  return { host: '127.0.0.1', port: endpoint.port, hostKey: endpoint.hostKey, username: 'root', credentialRef: CREDENTIAL_REF };
}

export function prepareJob(spec: JobSpec): PreparedJob {
  const { source, destination } = spec;
  const destinationRef = destination.kind === 'local' ? LOCAL_DESTINATION : SFTP_DESTINATION;
  const destinationConfig =
    destination.kind === 'local' ? { directory: destination.directory } : { ...sftpConfig(destination), directory: destination.directory };
  // The SFTP destination's policy entry mirrors the SFTP source's: a pinned host and the roots it
  // may write. chooseDestination() checks the agent's policy accepts this shape.
  const destinations =
    destination.kind === 'local'
      ? { local: [{ root: destination.directory }] }
      : { sftp: [{ host: '127.0.0.1', port: destination.port, hostKey: destination.hostKey, roots: [destination.directory] }] };
  const policy = {
    sources: { sftp: [{ host: '127.0.0.1', port: source.port, hostKey: source.hostKey, paths: [source.path] }] },
    destinations,
    recipients: spec.recipientFingerprint === '' ? [] : [spec.recipientFingerprint],
  };
  const job: Job = {
    runId: randomUUID(),
    integrationId: randomUUID(),
    integrationVersion: 1,
    spec: {
      name: 'bench',
      agentId: randomUUID(),
      source: { connector: 'sftp@1', config: { ...sftpConfig(source), path: source.path } },
      destination: { connector: destinationRef, config: destinationConfig },
      recipients: [spec.recipientPublicKey],
      // The harness writes its file before the run, so the stability wait would only add idle time.
      selection: { stableForMs: 0 },
    },
  };
  return { job, policyText: JSON.stringify(policy), credentialRef: CREDENTIAL_REF };
}

/** The agent's dependencies for a prepared job: the built-in connectors, the parsed policy, the key. */
export interface DestinationChoice {
  readonly kind: 'local' | 'sftp';
  /** Why this kind, for the benchmark's JSON and the fault suite's log. */
  readonly why: string;
}

/**
 * SFTP → SFTP once the agent registers an `sftp@1` destination and a local policy can allow it (the
 * entry prepareJob writes is tried against the agent's own policy check); SFTP → local folder until then.
 */
export function chooseDestination(): DestinationChoice {
  const registry = builtInConnectors();
  if (!registry.list().some((entry) => entry.kind === 'destination' && entry.ref === SFTP_DESTINATION)) {
    return { kind: 'local', why: `no ${SFTP_DESTINATION} destination is registered: delivering to a local folder` };
  }
  const probe = prepareJob({
    source: { port: 22, hostKey: PROBE_HOST_KEY, path: '/probe/*' },
    destination: { kind: 'sftp', port: 22, hostKey: PROBE_HOST_KEY, directory: '/probe-out' },
    recipientPublicKey: '',
    recipientFingerprint: '',
  });
  try {
    const policy = LocalPolicy.parse(probe.policyText, 'generated policy');
    policy.checkDestination(registry.destination(SFTP_DESTINATION, probe.job.spec.destination.config).claims());
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { kind: 'local', why: `${SFTP_DESTINATION} is registered, but the local policy refuses the generated SFTP destination entry (${reason}): delivering to a local folder` };
  }
  return { kind: 'sftp', why: `${SFTP_DESTINATION} is registered and allowed by the local policy` };
}

export function agentDeps(prepared: PreparedJob, privateKey: string, logger: TransferDeps['logger']): TransferDeps {
  return {
    registry: builtInConnectors(),
    policy: LocalPolicy.parse(prepared.policyText, 'generated policy'),
    secrets: async (ref) => {
      if (ref !== prepared.credentialRef) throw new Error(`unexpected credential reference ${JSON.stringify(ref)}`);
      return { privateKey };
    },
    logger,
    // Short waits keep a fault case quick while still exercising retry and reconnect.
    retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200, maxTotalMs: 5_000 },
  };
}

export const quietLogger: TransferDeps['logger'] = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
