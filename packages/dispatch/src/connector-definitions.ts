/**
 * The connectors the control plane knows: their definitions only (schemas and claims), never their
 * runtimes, so no ssh2, file system or child-process code is loaded here. Integrations are
 * validated, scoped and offered in the console from this list. To support a new connector, add its
 * `./definition` export below; agents still run only what their own registry and local policy allow.
 */
import { refOf, schemesOf, type DestinationDefinition, type SourceDefinition } from '@airlock/connector-api/definition';
import { azblobDestinationDefinition } from '@airlock/connector-azblob/definition';
import { httpsSourceDefinition } from '@airlock/connector-https/definition';
import { localFolderDestinationDefinition, localFolderSourceDefinition } from '@airlock/connector-local/definition';
import { postgresSourceDefinition } from '@airlock/connector-postgres/definition';
import { s3DestinationDefinition } from '@airlock/connector-s3/definition';
import { scriptSourceDefinition } from '@airlock/connector-script/definition';
import { sftpDestinationDefinition, sftpSourceDefinition } from '@airlock/connector-sftp/definition';

export const sourceDefinitions: readonly SourceDefinition[] = [sftpSourceDefinition, localFolderSourceDefinition, scriptSourceDefinition, postgresSourceDefinition, httpsSourceDefinition];
export const destinationDefinitions: readonly DestinationDefinition[] = [sftpDestinationDefinition, localFolderDestinationDefinition, s3DestinationDefinition, azblobDestinationDefinition];

/** The schemes a grant may name: exactly those the definitions above declare. */
export const connectorSchemes = schemesOf([...sourceDefinitions, ...destinationDefinitions]);

export function sourceDefinition(ref: string): SourceDefinition | undefined {
  return sourceDefinitions.find((definition) => refOf(definition) === ref);
}

export function destinationDefinition(ref: string): DestinationDefinition | undefined {
  return destinationDefinitions.find((definition) => refOf(definition) === ref);
}
