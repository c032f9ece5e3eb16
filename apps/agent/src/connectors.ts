/**
 * The connectors this agent can run: one explicit list. To add one, depend on its package and add
 * its definitions here. Scripts come from the local policy: only those it approves can run.
 */
import { ConnectorRegistry } from '@airlock/connector-api';
import { localFolderDestination, localFolderSource } from '@airlock/connector-local';
import { type ApprovedScript, scriptSource } from '@airlock/connector-script';
import { sftpDestination, sftpSource } from '@airlock/connector-sftp';

export function builtInConnectors(approvedScripts: readonly ApprovedScript[] = []): ConnectorRegistry {
  return new ConnectorRegistry().add(sftpSource, sftpDestination, localFolderSource, localFolderDestination, scriptSource(approvedScripts));
}
