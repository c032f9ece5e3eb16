/**
 * Test fixtures with real parts: a throwaway PostgreSQL, OpenSSH sshd, an in-process (optionally
 * hostile) SFTP server, and gpg. Every fixture is an `AsyncDisposable` that cleans up after itself:
 * `await using sshd = await startSshd()`.
 */
export { freePort, waitForPort } from './ports.ts';
export { createTestDatabase, postgresBinDir, startPostgres, type TestPostgres } from './postgres.ts';
export { SFTP_TEST_USER, ensureSftpUser, startSshd, type StartSshdOptions, type TestSshd } from './sshd.ts';
export {
  startSftpServer,
  type SftpRequest,
  type StartSftpServerOptions,
  type TestSftpServer,
} from './sftp-server.ts';
export { generateSshKeyPair, publicKeyLine, sshKeygenFingerprint, sshKeygenHostVerifier } from './ssh-keys.ts';
export { gpgDecrypt } from './gpg.ts';
export { seededRandom } from './random.ts';
export { startCutProxy, type CutProxy, type CutProxyOptions, type Direction } from './cut-proxy.ts';
export { startSquid, type StartSquidOptions, type TestSquid } from './squid.ts';
