/**
 * `@airlock/connector-script/definition`: the script source as the control plane sees it: which
 * approved script an integration names and with what parameters. Pure. Which scripts exist, and
 * what they run, lives only in each agent's local policy (`sources.script`); the runtime in
 * `source.ts` runs the entry the host found there.
 */
import { z } from 'zod';
import { isSafeName, sourceDefinition } from '@airlock/connector-api/definition';
import { approvedScript, type ApprovedScript } from './approved.ts';

export const scriptSourceConfig = z.strictObject({
  /** The approved script's name in the agent's local policy. */
  name: z.string().min(1).max(64),
  /** Values for the script's declared parameters. */
  params: z.record(z.string(), z.string().max(4096)).default({}),
  /** The name the output is delivered under (before the destination's suffix); default `<name>.out`. */
  outputName: z.string().min(1).max(200).refine(isSafeName, 'must be one file name: no /, \\, control characters, . or ..').optional(),
});
export type ScriptSourceConfig = z.output<typeof scriptSourceConfig>;

export const scriptSourceDefinition = sourceDefinition<ScriptSourceConfig, ApprovedScript>({
  id: 'script',
  version: 1,
  title: 'Approved export script',
  config: scriptSourceConfig,
  claims: (config) => [{ action: 'execute', scheme: 'script', path: `/${config.name}` }],
  claimFor: (config) => ({ action: 'execute', scheme: 'script', path: `/${config.name}` }),
  scheme: { name: 'script', form: 'name' },
  // `sources.script` in the local policy: each entry approves one script. It reads only its own
  // output, and has nothing to delete or archive.
  policy: { entry: approvedScript, grant: (entry, claim) => (claim.scheme === 'script' && claim.path === `/${entry.name}` ? { paths: [claim.path] } : undefined) },
});
