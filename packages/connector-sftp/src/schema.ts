import { absolutePath, deliveryFileMode } from '@airlock/connector-api/definition';
import { z } from 'zod';
import { FINGERPRINT_PATTERN } from './fingerprint.ts';

/** How to reach and authenticate to an SFTP server; shared by the source and the destination. */
const connectionFields = {
  /** Host name or IP address of the SFTP server. */
  host: z
    .string()
    .min(1)
    .max(253)
    .regex(/^[A-Za-z0-9.:_-]+$/, 'must be a host name or IP address'),
  /** TCP port; default 22. */
  port: z.number().int().min(1).max(65_535).default(22),
  /**
   * The pinned host key fingerprint (`SHA256:...`, as `ssh-keygen -lf` prints it). There is no
   * trust-on-first-use: a server presenting any other key is refused before we authenticate.
   */
  hostKey: z.string().regex(FINGERPRINT_PATTERN, 'must be an OpenSSH SHA256 fingerprint like SHA256:<43 base64 chars>'),
  username: z.string().min(1).max(256),
  /** Names the entry in the agent's local secrets file holding `password` or `privateKey`. */
  credentialRef: z.string().min(1).max(256),
  /** Handshake and authentication timeout in milliseconds; default 20_000. */
  connectTimeoutMs: z.number().int().min(1_000).max(300_000).default(20_000),
};

/** What an SFTP source reads. Secrets are not here: `credentialRef` names them in the agent's local secrets file. */
export const sftpSourceConfig = z.strictObject({
  ...connectionFields,
  /** Absolute POSIX path of a file, or a glob such as `/exports/*.csv` or `/exports/**\/*.csv`. */
  path: absolutePath('Absolute POSIX path of a file, or a glob such as /exports/*.csv.'),
});

/** Where an SFTP destination delivers. */
export const sftpDestinationConfig = z.strictObject({
  ...connectionFields,
  /** Absolute POSIX path of the remote directory deliveries land in. */
  directory: absolutePath('Absolute path of the directory deliveries land in.'),
  fileMode: deliveryFileMode,
});

export type SftpDestinationConfig = z.output<typeof sftpDestinationConfig>;
/** The fields both the source and the destination use to connect. */
export type SftpConnectionConfig = Pick<SftpSourceConfig, keyof typeof connectionFields>;
export type SftpSourceConfig = z.output<typeof sftpSourceConfig>;

/** `host:port`, as claims and log lines name the server. */
export function authorityOf(config: SftpConnectionConfig): string {
  return `${config.host}:${config.port}`;
}

/** The secret behind `credentialRef`: a password, or an OpenSSH/PEM private key with an optional passphrase. */
export const sftpSecrets = z.union([
  z.strictObject({ password: z.string().min(1) }),
  z.strictObject({ privateKey: z.string().min(1), passphrase: z.string().optional() }),
]);

export type SftpSecrets = z.output<typeof sftpSecrets>;
