import { describe, expect, it, vi } from 'vitest';

// The control plane validates, scopes and describes integrations from definitions alone: loading
// a connector's runtime (ssh2 and its native bindings) there would be a mistake, so it fails here.
vi.mock('ssh2', () => {
  throw new Error('the SFTP runtime (ssh2) was loaded');
});
vi.mock('ssh2-sftp-client', () => {
  throw new Error('the SFTP runtime (ssh2-sftp-client) was loaded');
});

describe('connector definitions in the control plane', () => {
  it('[integrity #3] validates, scopes and lists connectors without loading any runtime', async () => {
    const { requiredScopes } = await import('./required-scopes.ts');
    const { checkConnectorConfig, connectorCatalog } = await import('./connector-catalog.ts');
    const config = { host: 'files.example.com', hostKey: `SHA256:${'A'.repeat(43)}`, username: 'u', credentialRef: 'c', path: '/x/*.csv' };
    expect(requiredScopes({ source: { connector: 'sftp@1', config }, destination: { connector: 'local@1', config: { directory: '/out' } } })).toHaveLength(2);
    expect(checkConnectorConfig('source', 'sftp@1', { ...config, credentialsRef: 'c' }).map((issue) => issue.path)).toEqual(['']);
    const { destinationDefinitions, sourceDefinitions } = await import('./connector-definitions.ts');
    const listed = [...sourceDefinitions, ...destinationDefinitions].map((definition) => `${definition.kind}:${definition.id}@${definition.version}`);
    expect(connectorCatalog().map((connector) => `${connector.kind}:${connector.ref}`)).toEqual(listed);
    // The connectors that were here before any was added stay offered.
    expect(listed).toEqual(expect.arrayContaining(['destination:local@1', 'destination:sftp@1', 'source:local@1', 'source:script@1', 'source:sftp@1']));
  });
});
