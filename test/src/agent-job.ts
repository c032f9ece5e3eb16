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
export const SFTP_DESTINATION = 'sftp@1';
const LOCAL_DESTINATION = 'local@1';
const CREDENTIAL_REF = 'bench-sshd';

/** True once the agent registers an SFTP destination; until then benchmarks deliver to a local folder. */
export function sftpDestinationRegistered(): boolean {
  return builtInConnectors()
    .list()
    .some((entry) => entry.kind === 'destination' && entry.ref === SFTP_DESTINATION);
}

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
  // The SFTP destination's policy entry mirrors the SFTP source's: a pinned host and the roots it may write.
  const destinations =
    destination.kind === 'local'
      ? { local: [{ root: destination.directory }] }
      : { sftp: [{ host: '127.0.0.1', port: destination.port, hostKey: destination.hostKey, roots: [destination.directory] }] };
  const policy = {
    sources: { sftp: [{ host: '127.0.0.1', port: source.port, hostKey: source.hostKey, paths: [source.path] }] },
    destinations,
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
    },
  };
  return { job, policyText: JSON.stringify(policy), credentialRef: CREDENTIAL_REF };
}

/** The agent's dependencies for a prepared job: the built-in connectors, the parsed policy, the key. */
export function agentDeps(prepared: PreparedJob, privateKey: string, logger: TransferDeps['logger']): TransferDeps {
  return {
    registry: builtInConnectors(),
    policy: LocalPolicy.parse(prepared.policyText, 'generated policy'),
    secrets: async (ref) => {
      if (ref !== prepared.credentialRef) throw new Error(`unexpected credential reference ${JSON.stringify(ref)}`);
      return { privateKey };
    },
    logger,
  };
}

export const quietLogger: TransferDeps['logger'] = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
