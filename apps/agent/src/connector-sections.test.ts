/**
 * The local policy and the secrets file are shaped by the registered connectors: a connector brings
 * its own policy section and secrets shape, and the host knows no connector by name.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConnectorRegistry, defineDestination, destinationDefinition } from '@airlock/connector-api';
import { mockContext } from '@airlock/connector-api/testkit';
import { LocalPolicy, PolicyRefusal } from './policy.ts';
import { parseSecrets } from './secrets.ts';
import { builtInConnectors } from './connectors.ts';

/** A destination with a scheme and a policy section the host has never heard of. */
const vault = defineDestination(
  destinationDefinition<{ endpoint: string; shelf: string }, { endpoint: string; shelves: string[]; label: string }>({
    id: 'vault',
    version: 1,
    title: 'Vault (test)',
    config: z.strictObject({ endpoint: z.string(), shelf: z.string() }),
    secrets: z.strictObject({ token: z.string().min(1) }),
    claims: (config) => [{ action: 'write', scheme: 'vault', authority: config.endpoint, path: `/${config.shelf}` }],
    scheme: { name: 'vault', form: 'network', defaultPort: 8200 },
    policy: {
      entry: z.strictObject({ endpoint: z.string(), shelves: z.array(z.string()).min(1), label: z.string() }),
      grant: (entry, claim) => (claim.authority === entry.endpoint ? { paths: entry.shelves.map((shelf) => `/${shelf}`) } : undefined),
    },
  }),
  {
    async connect(ctx, _config, policy) {
      const { token } = await ctx.secret('vault');
      ctx.logger.info({ labels: policy.map((entry) => entry.label), tokenLength: token?.length }, 'connected');
      return { begin: () => Promise.reject(new Error('not in this test')), close: () => Promise.resolve() };
    },
  },
);
const registry = () => builtInConnectors().add(vault);
const claim = { action: 'write', scheme: 'vault', authority: 'vault.internal:8200', path: '/a' } as const;

describe('connector sections of the local policy', () => {
  const text = 'destinations:\n  vault:\n    - { endpoint: "vault.internal:8200", shelves: [a], label: pinned }\n';

  it('parses a registered connector’s section with its own schema and judges its claims through its grant', () => {
    const policy = LocalPolicy.parse(text, 'policy', registry());
    expect(policy.checkDestination([claim], 'vault@1')).toEqual([{ endpoint: 'vault.internal:8200', shelves: ['a'], label: 'pinned' }]);
    expect(() => policy.checkDestination([{ ...claim, path: '/b' }])).toThrow(PolicyRefusal);
    expect(() => policy.checkDestination([{ ...claim, authority: 'other:8200' }])).toThrow(PolicyRefusal);
  });

  it('refuses a section no registered connector owns, and an entry its schema refuses', () => {
    expect(() => LocalPolicy.parse(text)).toThrow(/vault/);
    expect(() => LocalPolicy.parse('destinations:\n  vault:\n    - { endpoint: x, shelves: [] , label: l}\n', 'policy', registry())).toThrow(/destinations\.vault\.0\.shelves/);
    expect(() => LocalPolicy.parse('destinations:\n  vault:\n    - { endpoint: x, shelves: [a], label: l, extra: 1 }\n', 'policy', registry())).toThrow(/extra/);
  });

  it('says where approved scripts went', () => {
    expect(() => LocalPolicy.parse('scripts: []\n')).toThrow(/sources\.script/);
  });

  it('hands the runtime its own entries and only secrets of its declared shape', async () => {
    const policy = LocalPolicy.parse(text, 'policy', registry());
    const entries = policy.checkDestination([claim], 'vault@1');
    const logged: unknown[] = [];
    const ctx = mockContext({
      policy: entries,
      secret: async () => ({ token: 't0ken' }),
      logger: { ...mockContext().logger, info: (meta) => void logged.push(meta) },
    });
    await registry().destination('vault@1', { endpoint: 'vault.internal:8200', shelf: 'a' }).connect(ctx);
    expect(logged).toEqual([{ labels: ['pinned'], tokenLength: 5 }]);
    const wrongShape = mockContext({ policy: entries, secret: async () => ({ password: 'hunter2' }) });
    const refused = registry().destination('vault@1', { endpoint: 'vault.internal:8200', shelf: 'a' }).connect(wrongShape);
    await expect(refused).rejects.toThrow(/does not have the shape vault@1 needs/);
    await expect(refused).rejects.not.toThrow(/hunter2/);
  });
});

describe('secrets file', () => {
  it('accepts an entry of any registered connector’s shape and refuses one of none, by name only', () => {
    expect(() => parseSecrets('v:\n  token: abc\n', 'secrets.yaml', registry())).not.toThrow();
    expect(() => parseSecrets('v:\n  token: abc\n', 'secrets.yaml', new ConnectorRegistry())).toThrow(/v: not the secrets shape/);
    expect(() => parseSecrets('s:\n  privateKeyFile: /k\n', 'secrets.yaml')).not.toThrow();
    const error = (() => {
      try {
        parseSecrets('s:\n  pasword: hunter2\n', 'secrets.yaml');
      } catch (caught) {
        return caught instanceof Error ? caught.message : String(caught);
      }
      return '';
    })();
    expect(error).toMatch(/s: not the secrets shape of any registered connector/);
    expect(error).not.toMatch(/hunter2/);
  });

  it('names every malformed entry by its place alone, never by what it holds', () => {
    expect(() => parseSecrets('s:\n  password: [hunter2]\nt: hunter3\n', 'secrets.yaml')).toThrow(/^secrets\.yaml: s\.password: invalid entry; t: invalid entry$/);
    expect(() => parseSecrets('- hunter2\n', 'secrets.yaml')).toThrow(/^secrets\.yaml: \(root\): invalid entry$/);
  });
});
