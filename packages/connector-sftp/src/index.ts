/**
 * @airlock/connector-sftp: the SFTP source and destination, with pinned host keys and pipelined
 * reads and writes. Register `sftpSource` and `sftpDestination` in the agent's connector list;
 * `fingerprintOf` computes the `SHA256:...` pin format.
 */
export { sftpSource } from './source.ts';
export { sftpDestination } from './destination.ts';
export * from './definition.ts';
export { connectSftp, type SftpCapabilities, type SftpConnection } from './connection.ts';
export { SftpReadStream, type PipelineOptions, type SftpReadStreamOptions } from './reader.ts';
export { SftpWriteStream, type SftpWriteStreamOptions } from './writer.ts';
export { fingerprintOf, fingerprintsEqual, FINGERPRINT_PATTERN } from './fingerprint.ts';
