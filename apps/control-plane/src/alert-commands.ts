/** `airlock alert ...`: alerts (list, acknowledge, resolve) and their webhook destinations. */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@airlock/api/router';
import { UserError } from '@airlock/errors';
import { alertKinds, alertSeverities } from '@airlock/protocol';
import type { Output } from './output.ts';

function kindsOption(text: string, previous: string[] = []): string[] {
  return [...previous, ...text.split(',').map((kind) => kind.trim()).filter((kind) => kind !== '')];
}

export function addAlertCommands(program: Command, client: () => Promise<TRPCClient<AppRouter>>, output: Output): void {
  const json = new Option('--json', 'print JSON');
  const alert = program.command('alert').description('security alerts and the webhooks they are sent to');
  alert
    .command('list')
    .addOption(new Option('--state <state>', 'only alerts in this state').choices(['open', 'acknowledged', 'resolved', 'unresolved']))
    .addOption(new Option('--kind <kind>', 'only this kind').choices(alertKinds))
    .option('--limit <n>', 'how many', '100')
    .addOption(json)
    .action(async (options: { state?: 'open' | 'acknowledged' | 'resolved' | 'unresolved'; kind?: (typeof alertKinds)[number]; limit: string; json?: boolean }) => {
      const rows = await (await client()).alerts.list.query({ state: options.state, kind: options.kind, limit: Number(options.limit) });
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${r.id}  ${r.lastSeenAt}  ${r.severity.padEnd(8)}  ${r.state.padEnd(12)}  ×${String(r.count).padEnd(4)}  ${r.kind}  ${r.summary}`),
      );
    });
  alert
    .command('ack')
    .description('acknowledge an open alert')
    .argument('<alertId>')
    .addOption(json)
    .action(async (alertId: string, options: { json?: boolean }) => {
      const result = await (await client()).alerts.acknowledge.mutate({ id: alertId });
      output(Boolean(options.json), result, () => `acknowledged alert ${result.id}`);
    });
  alert
    .command('resolve')
    .argument('<alertId>')
    .addOption(json)
    .action(async (alertId: string, options: { json?: boolean }) => {
      const result = await (await client()).alerts.resolve.mutate({ id: alertId });
      output(Boolean(options.json), result, () => `resolved alert ${result.id}`);
    });

  const webhook = alert.command('webhook').description('webhook destinations (Slack-compatible JSON, signed with HMAC-SHA256)');
  webhook
    .command('add')
    .requiredOption('--name <name>', 'a label for the destination')
    .option('--url <url>', 'https URL (http only to loopback); prefer --url-file when the URL holds a credential')
    .option('--url-file <file>', 'read the URL from this file, so it stays out of the process list and shell history')
    .option('--kinds <kinds>', `comma-separated alert kinds (default every kind): ${alertKinds.join(', ')}`, kindsOption)
    .addOption(new Option('--min-severity <severity>', 'lowest severity sent').choices(alertSeverities).default('warning'))
    .option('--disabled', 'create it disabled')
    .addOption(json)
    .action(async (options: { name: string; url?: string; urlFile?: string; kinds?: string[]; minSeverity: (typeof alertSeverities)[number]; disabled?: boolean; json?: boolean }) => {
      if (Boolean(options.url) === Boolean(options.urlFile)) throw new UserError('give one of --url and --url-file');
      const url = options.url ?? (await readFile(options.urlFile ?? '', 'utf8')).trim();
      const kinds = (options.kinds ?? []).map((kind) => {
        const known = alertKinds.find((candidate) => candidate === kind);
        if (!known) throw new UserError(`--kinds: unknown alert kind ${JSON.stringify(kind)}`);
        return known;
      });
      const result = await (await client()).alertDestinations.create.mutate({ name: options.name, url, kinds, minSeverity: options.minSeverity, enabled: !options.disabled });
      output(Boolean(options.json), result, () =>
        [`webhook ${result.id} to ${result.origin}`, 'signing secret (shown once; receivers verify X-Airlock-Signature with it):', result.signingSecret],
      );
    });
  webhook
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await client()).alertDestinations.list.query();
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${r.id}  ${r.enabled ? 'enabled ' : 'disabled'}  ≥${r.minSeverity.padEnd(8)}  ${r.name}  ${r.origin}  ${r.kinds.length > 0 ? r.kinds.join(',') : 'all kinds'}`),
      );
    });
  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    webhook
      .command(name)
      .argument('<webhookId>')
      .addOption(json)
      .action(async (webhookId: string, options: { json?: boolean }) => {
        const result = await (await client()).alertDestinations.setEnabled.mutate({ id: webhookId, enabled });
        output(Boolean(options.json), result, () => `${name}d webhook ${result.id}`);
      });
  }
  webhook
    .command('remove')
    .description('delete a destination and its pending deliveries')
    .argument('<webhookId>')
    .addOption(json)
    .action(async (webhookId: string, options: { json?: boolean }) => {
      const result = await (await client()).alertDestinations.delete.mutate({ id: webhookId });
      output(Boolean(options.json), result, () => `removed webhook ${result.id}`);
    });
  webhook
    .command('test')
    .description('send a signed test alert now and show what the receiver answered')
    .argument('<webhookId>')
    .addOption(json)
    .action(async (webhookId: string, options: { json?: boolean }) => {
      const result = await (await client()).alertDestinations.test.mutate({ id: webhookId });
      output(Boolean(options.json), result, () => (result.ok ? `delivered: HTTP ${result.status} in ${result.durationMs} ms` : `failed: ${result.error}`));
      if (!result.ok) process.exitCode = 1;
    });
}
