/**
 * The connectors this agent can run: one explicit list, one line per connector package. To add
 * one, depend on its package and add its runtimes here; its section of the local policy and the
 * shape of its secrets come with it. What a job may touch is still only what the local policy allows.
 */
import { ConnectorRegistry } from '@airlock/connector-api';
import { azblobDestination } from '@airlock/connector-azblob';
import { httpsSource } from '@airlock/connector-https';
import { localFolderDestination, localFolderSource } from '@airlock/connector-local';
import { postgresSource } from '@airlock/connector-postgres';
import { s3Destination } from '@airlock/connector-s3';
import { scriptSource } from '@airlock/connector-script';
import { sftpDestination, sftpSource } from '@airlock/connector-sftp';

export function builtInConnectors(): ConnectorRegistry {
  return new ConnectorRegistry()
    .add(sftpSource, sftpDestination)
    .add(localFolderSource, localFolderDestination)
    .add(scriptSource)
    .add(postgresSource)
    .add(httpsSource)
    .add(s3Destination)
    .add(azblobDestination);
}
