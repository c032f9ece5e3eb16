/**
 * The connectors this agent can run: one explicit list. To add one, depend on its package and add
 * its definitions here.
 */
import { ConnectorRegistry } from '@airlock/connector-api';
import { localFolderDestination, localFolderSource } from '@airlock/connector-local';
import { sftpDestination, sftpSource } from '@airlock/connector-sftp';

export function builtInConnectors(): ConnectorRegistry {
  return new ConnectorRegistry().add(sftpSource, localFolderSource, localFolderDestination, sftpDestination);
}
