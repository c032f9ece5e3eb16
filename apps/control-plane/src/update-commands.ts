/** `airlock release ...` and `airlock rollout ...`: publish signed agent releases and roll them out by ring. */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@airlock/api/router';
import { UserError } from '@airlock/errors';
import { RELEASE_CHUNK_BYTES, signedStatement } from '@airlock/protocol';
import type { Output } from './output.ts';

export function addUpdateCommands(program: Command, client: () => Promise<TRPCClient<AppRouter>>, output: Output): void {
  const json = new Option('--json', 'print JSON');
  const release = program.command('release').description('agent releases, signed with the release key (not the control-plane key)');
  release
    .command('publish')
    .description('upload an agent artifact with its signed manifest, then publish it')
    .requiredOption('--manifest <file>', 'the signed manifest: {"payload": ..., "signature": ...}, as the release tooling writes it')
    .requiredOption('--artifact <file>', 'the agent executable the manifest names')
    .addOption(json)
    .action(async (options: { manifest: string; artifact: string; json?: boolean }) => {
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(options.manifest, 'utf8'));
      } catch (error) {
        throw new UserError(`${options.manifest}: not JSON (${error instanceof Error ? error.message : String(error)})`);
      }
      const parsed = signedStatement.safeParse(raw);
      if (!parsed.success) throw new UserError(`${options.manifest}: not a signed manifest ({"payload", "signature"})`);
      const artifact = await readFile(options.artifact);
      const api = await client();
      const created = await api.releases.create.mutate({ release: parsed.data });
      if (artifact.length !== created.size) throw new UserError(`${options.artifact} is ${artifact.length} bytes; the manifest says ${created.size}`);
      for (let index = 0; index < created.chunks; index++) {
        const data = artifact.subarray(index * RELEASE_CHUNK_BYTES, (index + 1) * RELEASE_CHUNK_BYTES).toString('base64');
        await api.releases.uploadChunk.mutate({ id: created.id, index, data });
      }
      const published = await api.releases.publish.mutate({ id: created.id });
      const result = { id: created.id, version: created.version, size: created.size, state: published.state };
      output(Boolean(options.json), result, () => `release ${result.version} (${result.id}) published, ${result.size} bytes`);
    });
  release
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await client()).releases.list.query();
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${r.id}  ${r.version.padEnd(12)}  ${r.platform}  ${r.state.padEnd(9)}  ${r.size} bytes  sha256:${r.sha256}${r.downgradeAllowed ? '  (signed downgrade)' : ''}`),
      );
    });

  const rollout = program.command('rollout').description('roll a release out to agents: a canary group first, then the rest');
  rollout
    .command('create')
    .requiredOption('--release <id>', 'a published release')
    .option('--canary-group <id>', 'the agent group that updates first')
    .option('--starts-at <iso>', 'offer updates from this time (default now)')
    .option('--ends-at <iso>', 'and until this time (default seven days after the start)')
    .option('--halt-at <fraction>', 'halt when a ring\'s failed share passes this (0 to 1; 0 halts at the first failure)', '0')
    .option('--downgrade', 'replace newer versions too; agents accept it only if the release key signed the release as a downgrade')
    .addOption(json)
    .action(async (options: { release: string; canaryGroup?: string; startsAt?: string; endsAt?: string; haltAt: string; downgrade?: boolean; json?: boolean }) => {
      const haltFailureRate = Number(options.haltAt);
      if (!Number.isFinite(haltFailureRate)) throw new UserError('--halt-at: expected a number from 0 to 1');
      const result = await (await client()).rollouts.create.mutate({
        releaseId: options.release,
        ...(options.canaryGroup === undefined ? {} : { canaryGroupId: options.canaryGroup }),
        ...(options.startsAt === undefined ? {} : { startsAt: options.startsAt }),
        ...(options.endsAt === undefined ? {} : { endsAt: options.endsAt }),
        haltFailureRate,
        downgrade: Boolean(options.downgrade),
      });
      output(Boolean(options.json), result, () => `rollout ${result.id}: ${result.canary} canary agent(s), then ${result.rest} more`);
    });
  rollout
    .command('list')
    .description('rollouts with each agent\'s ring and progress')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await client()).rollouts.list.query();
      output(Boolean(options.json), rows, () =>
        rows.flatMap((r) => [
          `${r.id}  ${r.version}  ${r.state}${r.haltedReason ? ` (${r.haltedReason})` : ''}  installed ${r.progress.installed}/${r.progress.total}, installing ${r.progress.installing}, failed ${r.progress.failed}`,
          ...r.agents.map((a) => `  ${a.ring.padEnd(6)}  ${a.state.padEnd(10)}  ${a.hostname}  ${a.agentId}${a.reason ? `  ${a.reason}` : ''}`),
        ]),
      );
    });
  rollout
    .command('halt')
    .argument('<rolloutId>')
    .addOption(json)
    .action(async (rolloutId: string, options: { json?: boolean }) => {
      const result = await (await client()).rollouts.halt.mutate({ id: rolloutId });
      output(Boolean(options.json), result, () => `rollout ${result.id} halted`);
    });
}
