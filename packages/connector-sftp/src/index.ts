/**
 * @airlock/connector-sftp: the SFTP source, with pinned host keys. Register `sftpSource` in the
 * agent's connector list; `fingerprintOf` computes the `SHA256:...` pin format.
 */
export { sftpSource } from './source.ts';
export { fingerprintOf, fingerprintsEqual, FINGERPRINT_PATTERN } from './fingerprint.ts';
export { sftpSecrets, sftpSourceConfig, type SftpSecrets, type SftpSourceConfig } from './schema.ts';
