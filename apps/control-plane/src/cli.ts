/**
 * `airlock`: the control plane's server commands (serve, migrate, bootstrap) and the admin
 * commands that talk to a running control plane with an API key from AIRLOCK_API_KEY.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { AppRouter } from '@airlock/api/router';
import type { StoredAuditVerification } from '@airlock/storage';
import { EXIT_REFUSED, fetchNamingFailures, forPerson, formatIssues, fromRemote, OperationalError, personErrorJson, remoteErrorClass, UserError } from '@airlock/errors';
import { enrollCommand, integrationSpecToSave } from '@airlock/protocol';
import packageJson from '../package.json' with { type: 'json' };
import { addAlertCommands } from './alert-commands.ts';
import { addUpdateCommands } from './update-commands.ts';
import type { ExportFilter, ExportVerification } from './audit-commands.ts';
import { addOAuthCommands } from './oauth-commands.ts';
import { output, printableJson, printableLine } from './output.ts';
import { integrationId as resolveIntegration, runId as resolveRun } from './resolve.ts';
import { addSsoCommands } from './sso-commands.ts';
import { registerUserCommands } from './user-commands.ts';

// Each command imports what it uses when it runs (the database, OpenPGP, the tRPC client, the
// server): `airlock --help` and `--version` load none of them.

async function adminClient() {
  const { createTRPCClient, httpLink } = await import('@trpc/client');
  const { loadClientConfig } = await import('./config.ts');
  const config = loadClientConfig();
  if (!config.AIRLOCK_API_KEY) throw new UserError('set AIRLOCK_API_KEY to an admin API key (see `airlock bootstrap`)');
  const authorization = `Bearer ${config.AIRLOCK_API_KEY}`;
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: `${config.AIRLOCK_URL}/trpc`, headers: { authorization }, fetch: fetchNamingFailures(fetch, { timeoutMs: config.AIRLOCK_REQUEST_TIMEOUT_MS }) })] });
}

/** Reads an integration spec from JSON or YAML. A recipient may be `{ file: path }`, relative to the spec. */
export async function readIntegrationFile(file: string, agentId?: string, group?: string): Promise<unknown> {
  const text = await readFile(file, 'utf8');
  const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).default.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UserError(`${file}: expected an object`);
  const spec: Record<string, unknown> = { ...parsed };
  if (agentId) spec['agentId'] = agentId;
  if (group) spec['group'] = group;
  const recipients = spec['recipients'];
  if (Array.isArray(recipients)) {
    spec['recipients'] = await Promise.all(
      recipients.map(async (entry: unknown) => {
        if (typeof entry === 'object' && entry !== null && 'file' in entry && typeof entry.file === 'string') {
          return readFile(path.resolve(path.dirname(file), entry.file), 'utf8');
        }
        return entry;
      }),
    );
  }
  return spec;
}

const json = new Option('--json', 'print JSON');

/** How often `run now --wait` looks at the agent of a run still queued. */
const AGENT_CHECK_EVERY_MS = 10_000;

async function publicKeyOption(text: string, option = '--public-key'): Promise<Uint8Array> {
  const { decodePublicKey } = await import('@airlock/identity');
  try {
    return decodePublicKey(text);
  } catch (error) {
    throw new UserError(`${option}: expected a base64 Ed25519 public key`, { cause: error });
  }
}

/** Printed after `airlock --help`; the README's "Exit status" says the same. */
export const EXIT_STATUS_HELP = `
Exit status: 0 ok, 1 failed, 2 usage (a wrong command line), 3 refused by policy or permission.
With --json, a failure is one line of JSON on stderr: {"error": {"code": "...", "message": "..."}}.`;

/**
 * The program. With `jsonErrors`, commander's own complaints (an unknown option, a missing
 * argument) are left unprinted, for `main` to print as JSON; set before any command is added,
 * since subcommands copy the output settings when they are created.
 */
export function buildProgram(options: { jsonErrors?: boolean } = {}): Command {
  const program = new Command('airlock').description('Airlock control plane and admin CLI').version(packageJson.version).exitOverride();
  if (options.jsonErrors) program.configureOutput({ outputError: () => undefined, writeErr: () => undefined });
  else program.showHelpAfterError();
  program.addHelpText('after', EXIT_STATUS_HELP);

  program
    .command('serve')
    .description('run the control plane (configured by environment: DATABASE_URL, AIRLOCK_PORT, AIRLOCK_TLS_CERT, ...)')
    .action(async () => {
      const { loadServerConfig } = await import('./config.ts');
      const { startServer } = await import('./server.ts');
      const server = await startServer(loadServerConfig());
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  program
    .command('migrate')
    .description('apply database migrations and exit')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const { migrate } = await import('@airlock/api');
      const { loadServerConfig } = await import('./config.ts');
      const { openDatabase } = await import('./server.ts');
      const db = await openDatabase(loadServerConfig(), { command: 'airlock migrate', instead: 'or leave it to the server, which applies migrations when it starts' });
      try {
        const result = await migrate(db);
        output(Boolean(options.json), result, () => (result.applied.length ? `applied ${result.applied.join(', ')}` : 'up to date'));
      } finally {
        await db.close();
      }
    });

  program
    .command('bootstrap')
    .description('create a tenant and its first owner API key on this server; refused once the tenant has one')
    .requiredOption('--tenant <name>', 'tenant name')
    .option('--name <name>', 'a label for the key', 'bootstrap')
    .option('--days <n>', 'days until the key expires (1 to 90)', '30')
    .addOption(json)
    .action(async (options: { tenant: string; name: string; days: string; json?: boolean }) => {
      const { bootstrapTenant, migrate } = await import('@airlock/api');
      const { loadServerConfig } = await import('./config.ts');
      const { openDatabase } = await import('./server.ts');
      const db = await openDatabase(loadServerConfig(), { command: 'airlock bootstrap', instead: 'bootstrap, then start it again (bootstrap before the first `airlock serve`)' });
      try {
        await migrate(db);
        const result = await bootstrapTenant(db, { tenant: options.tenant, keyName: options.name, expiresInDays: Number(options.days) });
        output(Boolean(options.json), result, () =>
          [`tenant ${options.tenant} (${result.tenantId})`, `owner API key (shown once, expires ${result.expiresAt}):`, result.key],
        );
      } finally {
        await db.close();
      }
    });

  registerUserCommands(program);

  const token = program.command('token').description('enrollment tokens');
  token
    .command('create')
    .description('create a one-time agent enrollment token')
    .option('--ttl <minutes>', 'minutes until it expires (1 to 30)', '15')
    .addOption(json)
    .action(async (options: { ttl: string; json?: boolean }) => {
      const { loadClientConfig } = await import('./config.ts');
      const result = await (await adminClient()).enrollment.createToken.mutate({ ttlMinutes: Number(options.ttl) });
      const command = enrollCommand({ url: loadClientConfig().AIRLOCK_URL, token: result.token, controlPlaneKey: result.controlPlaneKey }).text;
      output(Boolean(options.json), { ...result, command }, () => [command, `(one-time token, expires ${result.expiresAt}; the command pins this control plane's key)`]);
    });

  token
    .command('list')
    .description('enrollment tokens, newest first: whether each is usable, used (by which agent), expired or revoked')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await adminClient()).enrollment.listTokens.query();
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${r.id}  ${r.state.padEnd(7)}  created ${r.createdAt} by ${r.createdBy}  expires ${r.expiresAt}${r.agentId ? `  agent ${r.agentId}` : ''}`),
      );
    });
  token
    .command('revoke')
    .description('revoke an unused enrollment token')
    .argument('<tokenId>', 'as `airlock token list` shows it')
    .addOption(json)
    .action(async (tokenId: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).enrollment.revokeToken.mutate({ id: tokenId });
      output(Boolean(options.json), result, () => `revoked enrollment token ${result.id}`);
    });

  const integration = program.command('integration').description('integrations');
  integration
    .command('create')
    .description('create an integration from a JSON or YAML file, or save a new version of it')
    .requiredOption('-f, --file <path>', 'the integration spec')
    .option('--agent <id>', 'the agent that runs it (overrides agentId in the file)')
    .option('--group <name>', 'or the agent group whose healthy members run it (overrides group in the file)')
    .addOption(json)
    .action(async (options: { file: string; agent?: string; group?: string; json?: boolean }) => {
      const parsed = integrationSpecToSave.safeParse(await readIntegrationFile(options.file, options.agent, options.group));
      if (!parsed.success) {
        throw new UserError(`${options.file}: ${formatIssues(parsed.error.issues)}`);
      }
      const result = await (await adminClient()).integrations.save.mutate(parsed.data);
      // Every recipient key, one per line: a key file may hold several keys, and each is a recipient the agents must pin.
      output(Boolean(options.json), result, () =>
        [
          `integration ${result.id} version ${result.version}${result.nextRunAt ? `, next run ${result.nextRunAt}` : ''}`,
          ...result.recipientFingerprints.map((fingerprint) => `  recipient ${fingerprint}`),
          ...result.recipientWarnings.map((warning) => `  warning: ${warning}`),
        ].join('\n'),
      );
    });
  integration
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await adminClient()).integrations.list.query();
      output(Boolean(options.json), rows, () =>
        rows
          .map((r) => {
            const schedule = r.schedule ? `${r.schedule.cron} ${r.schedule.timezone}, next run ${r.nextRunAt ?? '-'}` : 'no schedule';
            return `${r.id}  ${r.name}  v${r.version}  ${r.groupId ? `group ${r.groupId}` : `agent ${r.agentId ?? '-'}`}  ${schedule}`;
          }),
      );
    });

  integration
    .command('show')
    .description('one integration: its version, target, schedule, state and spec')
    .argument('<integration>', 'name or id')
    .addOption(json)
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = await adminClient();
      const shown = await client.integrations.get.query({ id: await resolveIntegration(client, ref) });
      output(Boolean(options.json), shown, () => [
        `${shown.name} (${shown.id}) version ${shown.version}${shown.disabledAt ? `, DISABLED since ${shown.disabledAt}` : ''}`,
        `  runs on    ${shown.groupId ? `group ${shown.groupId}` : `agent ${shown.agentId ?? '-'}`}`,
        `  next run   ${shown.nextRunAt ?? '-'}`,
        `  saved      ${shown.updatedAt} (created ${shown.createdAt})`,
        ...printableJson(shown.spec, 2).split('\n').map((line) => `  ${line}`),
      ]);
    });
  for (const [name, description] of [
    ['disable', 'stop dispatching and scheduling an integration; its queued runs are cancelled, a running one finishes'],
    ['enable', 'dispatch and schedule a disabled integration again; its schedule restarts from now'],
    ['delete', 'delete an integration; its runs, versions and audit trail are kept, and its name is free again'],
  ] as const) {
    integration
      .command(name)
      .description(description)
      .argument('<integration>', 'name or id')
      .addOption(json)
      .action(async (ref: string, options: { json?: boolean }) => {
        const client = await adminClient();
        const id = await resolveIntegration(client, ref);
        const result = await client.integrations[name].mutate({ id });
        const cancelled = 'cancelledRuns' in result && result.cancelledRuns > 0 ? `; cancelled ${result.cancelledRuns} queued run(s)` : '';
        const next = 'nextRunAt' in result && result.nextRunAt ? `; next run ${result.nextRunAt}` : '';
        output(Boolean(options.json), result, () => `${name}d integration ${result.name} (${result.id})${cancelled}${next}`);
      });
  }
  integration
    .command('history')
    .description("an integration's saved versions, newest first")
    .argument('<integration>', 'name or id')
    .addOption(json)
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = await adminClient();
      const versions = await client.integrations.history.query({ id: await resolveIntegration(client, ref) });
      output(Boolean(options.json), versions, () =>
        versions.map((v) => {
          const spec = v.spec as { source?: { connector?: unknown }; destination?: { connector?: unknown }; recipients?: unknown[] };
          return `v${v.version}  ${v.savedAt}  by ${v.savedBy ?? '-'}  ${String(spec.source?.connector ?? '?')} -> ${String(spec.destination?.connector ?? '?')}  ${spec.recipients?.length ?? 0} recipient(s)`;
        }),
      );
    });

  const run = program.command('run').description('runs');
  run
    .command('now')
    .description('queue a run of an integration')
    .argument('<integration>', 'name or id')
    .option('--wait', 'wait until the run finishes, showing its progress')
    .option('--timeout <seconds>', 'with --wait: give up after this long', '300')
    .addOption(json)
    .action(async (ref: string, options: { wait?: boolean; timeout: string; json?: boolean }) => {
      const { agentSilence, ProgressPrinter } = await import('./run-progress.ts');
      const client = await adminClient();
      const id = await resolveIntegration(client, ref);
      const { runId, waiting } = await client.integrations.runNow.mutate({ id }).catch((error: unknown) => {
        // Refused for overlap: the server's reason, without the transport's wrapping.
        throw remoteErrorClass(error) === 'conflict' ? fromRemote(error) : error;
      });
      if (waiting && !options.json) process.stderr.write(`airlock: ${printableLine(waiting)}\n`);
      if (!options.wait) return output(Boolean(options.json), { runId, waiting }, () => `queued run ${runId}`);
      // Progress goes to stderr: stdout keeps the result alone, for scripts and --json.
      const printer = options.json ? undefined : new ProgressPrinter(process.stderr);
      const deadline = Date.now() + Number(options.timeout) * 1000;
      let silence: string | undefined;
      let lastAgentCheck = 0;
      for (;;) {
        const current = await client.runs.get.query({ id: runId });
        if (current.status === 'succeeded' || current.status === 'failed' || current.status === 'cancelled') {
          printer?.done();
          output(Boolean(options.json), current, () =>
            `run ${runId} ${current.status}${current.errorClass ? ` (${current.errorClass})` : ''}${current.reason ? `: ${current.reason}` : ''}`,
          );
          if (current.status !== 'succeeded') process.exitCode = current.errorClass === 'policy-violation' ? EXIT_REFUSED : 1;
          return;
        }
        // A queued run that nothing picks up: say why, once, instead of waiting in silence.
        if (current.status === 'queued' && current.agentId !== null && Date.now() - lastAgentCheck > AGENT_CHECK_EVERY_MS) {
          lastAgentCheck = Date.now();
          const agent = (await client.agents.list.query()).find((a) => a.id === current.agentId);
          const now = agentSilence(agent);
          if (now !== undefined && now !== silence) {
            if (printer) printer.note(`airlock: ${now}`);
            else process.stderr.write(`${printableJson({ warning: now })}\n`);
          }
          silence = now;
        }
        printer?.update(current);
        if (Date.now() > deadline) {
          printer?.done();
          throw new OperationalError(`run ${runId} still ${current.status} after ${options.timeout} s${silence ? ` (${silence})` : ''}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    });
  run
    .command('list')
    .option('--integration <integration>', 'only this integration (name or id)')
    .option('--limit <n>', 'how many', '50')
    .addOption(json)
    .action(async (options: { integration?: string; limit: string; json?: boolean }) => {
      const client = await adminClient();
      const integration = options.integration === undefined ? undefined : await resolveIntegration(client, options.integration);
      const rows = await client.runs.list.query({ integrationId: integration, limit: Number(options.limit) });
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${r.id}  ${r.status.padEnd(9)}  ${r.createdAt}  ${r.report ? `${r.report.files.length} files, ${r.report.bytesOut} bytes out` : ''}`),
      );
    });
  run
    .command('cancel')
    .description('cancel a queued or running run (an agent still running it has its report refused)')
    .argument('<run>', "run id, or an integration's name for its latest run")
    .addOption(json)
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = await adminClient();
      const result = await client.runs.cancel.mutate({ id: await resolveRun(client, ref) });
      output(Boolean(options.json), result, () => `cancelled run ${result.runId} (was ${result.previous})`);
    });
  run
    .command('show')
    .description("a run: status, why it failed, progress and its report")
    .argument('<run>', "run id, or an integration's name for its latest run")
    .addOption(json)
    .action(async (ref: string, options: { json?: boolean }) => {
      const client = await adminClient();
      const current = await client.runs.get.query({ id: await resolveRun(client, ref) });
      output(Boolean(options.json), current, () => [
        `run ${current.id} ${current.status}${current.errorClass ? ` (${current.errorClass})` : ''}`,
        ...(current.reason ? [`  reason     ${current.reason}`] : []),
        `  integration ${current.integrationId} version ${current.integrationVersion}`,
        `  agent      ${current.agentId ?? '-'}`,
        `  requested  ${current.createdAt} by ${current.requestedBy}`,
        `  finished   ${current.finishedAt ?? '-'}`,
        ...(current.report ? [`  files      ${current.report.files.length} delivered, ${current.report.skipped} skipped, ${current.report.deferred} deferred; ${current.report.bytesIn} bytes in, ${current.report.bytesOut} bytes out`] : []),
      ]);
    });

  const agent = program.command('agent').description('agents');
  agent
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await adminClient()).agents.list.query();
      output(Boolean(options.json), rows, () => rows.map((r) => `${r.id}  ${r.hostname}  ${r.status}  ${r.version ?? '-'}  last seen ${r.lastSeenAt ?? 'never'}`));
    });
  agent
    .command('revoke')
    .description('revoke an agent: its next request is refused and its queued runs are cancelled')
    .argument('<agentId>')
    .addOption(json)
    .action(async (agentId: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).agents.revoke.mutate({ id: agentId });
      output(Boolean(options.json), result, () => `revoked agent ${result.agentId}; cancelled ${result.cancelledRuns} queued run(s)`);
    });
  agent
    .command('rotate-key')
    .description('ask an agent to replace its Ed25519 key; it does so at its next heartbeat (or run `airlock-agent keys rotate` on its host)')
    .argument('<agentId>')
    .addOption(json)
    .action(async (agentId: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).agents.requestKeyRotation.mutate({ id: agentId });
      output(Boolean(options.json), result, () => `asked agent ${result.agentId} to rotate its key`);
    });

  const key = program.command('key').description('admin API keys (shown once, stored hashed, at most 90 days)');
  key
    .command('create')
    .requiredOption('--name <name>', 'a label for the key')
    .addOption(new Option('--role <role>', 'its role; never above your own').choices(['owner', 'admin', 'operator', 'auditor']).makeOptionMandatory())
    .option('--days <n>', 'days until it expires (1 to 90)', '30')
    .addOption(json)
    .action(async (options: { name: string; role: 'owner' | 'admin' | 'operator' | 'auditor'; days: string; json?: boolean }) => {
      const result = await (await adminClient()).apiKeys.create.mutate({ name: options.name, role: options.role, expiresInDays: Number(options.days) });
      output(Boolean(options.json), result, () => [`API key ${result.id} (shown once, expires ${result.expiresAt}):`, result.key]);
    });
  key
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await adminClient()).apiKeys.list.query();
      output(Boolean(options.json), rows, () =>
        rows
          .map((r) => {
            const by = r.createdBy === null ? 'bootstrap' : r.createdBy.kind === 'user' ? (r.createdBy.email ?? `user ${r.createdBy.id}`) : `key ${r.createdBy.id}`;
            const role = r.effectiveRole === r.role ? r.role : `${r.role}→${r.effectiveRole}`;
            return `${r.id}  alk_${r.prefix}_…  ${role.padEnd(8)}  ${r.name}  by ${by}  expires ${r.expiresAt}${r.revokedAt ? '  REVOKED' : r.suspended ? '  SUSPENDED' : ''}`;
          }),
      );
    });
  key
    .command('rotate')
    .description('replace a key with a new one of the same name and role; the old one stops working at once')
    .argument('<keyId>')
    .option('--days <n>', 'days until the new key expires (1 to 90)', '30')
    .addOption(json)
    .action(async (keyId: string, options: { days: string; json?: boolean }) => {
      const result = await (await adminClient()).apiKeys.rotate.mutate({ id: keyId, expiresInDays: Number(options.days) });
      output(Boolean(options.json), result, () => [`API key ${result.id} (shown once, expires ${result.expiresAt}):`, result.key]);
    });
  key
    .command('revoke')
    .argument('<keyId>')
    .addOption(json)
    .action(async (keyId: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).apiKeys.revoke.mutate({ id: keyId });
      output(Boolean(options.json), result, () => `revoked API key ${result.id}`);
    });

  const grant = program.command('grant').description('control-plane scopes: what an agent or agent group may do');
  grant
    .command('add')
    .description('grant a scope, e.g. "read sftp://files.example.com:22/exports/**", to an agent or a group')
    .argument('<scope>', '"<action> <resource>": action list, read, write, execute or delete')
    .option('--agent <id>', 'the agent')
    .option('--group <name>', 'the agent group')
    .option('--expires <ISO>', 'when the grant lapses, e.g. 2026-12-31T00:00:00Z')
    .addOption(json)
    .action(async (scope: string, options: { agent?: string; group?: string; expires?: string; json?: boolean }) => {
      if ((options.agent === undefined) === (options.group === undefined)) throw new UserError('give exactly one of --agent and --group');
      const result = await (await adminClient()).grants.add.mutate({ agentId: options.agent, group: options.group, scope, expiresAt: options.expires });
      output(Boolean(options.json), result, () => `grant ${result.id}: ${result.scope}${result.expiresAt ? ` until ${result.expiresAt}` : ''}`);
    });
  grant
    .command('list')
    .option('--agent <id>', 'only grants that apply to this agent (its own and its groups\')')
    .addOption(json)
    .action(async (options: { agent?: string; json?: boolean }) => {
      const rows = await (await adminClient()).grants.list.query({ agentId: options.agent });
      output(Boolean(options.json), rows, () =>
        rows
          .map((r) => {
            const subject = r.subject.type === 'group' ? `group ${r.subject.name ?? r.subject.id}` : `agent ${r.subject.id}`;
            const expiry = r.expiresAt ? `  ${r.expired ? 'expired' : 'until'} ${r.expiresAt}` : '';
            return `${r.id}  ${subject}  ${r.scope}${expiry}`;
          }),
      );
    });
  grant
    .command('revoke')
    .argument('<grantId>')
    .addOption(json)
    .action(async (grantId: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).grants.revoke.mutate({ id: grantId });
      output(Boolean(options.json), result, () => `revoked grant ${result.id}: ${result.scope}`);
    });
  grant
    .command('explain')
    .description('whether an agent may do something now, and which grant (or what) decides it')
    .requiredOption('--agent <id>', 'the agent')
    .argument('<scope>', '"<action> <resource>"')
    .addOption(json)
    .action(async (scope: string, options: { agent: string; json?: boolean }) => {
      const verdict = await (await adminClient()).grants.explain.query({ agentId: options.agent, scope });
      output(Boolean(options.json), verdict, () => `${verdict.allowed ? 'allowed' : 'denied'}: ${verdict.reason}`);
      if (!verdict.allowed) process.exitCode = 1;
    });

  const group = program.command('group').description('agent groups: grants to a group apply to its members');
  group
    .command('create')
    .argument('<name>')
    .addOption(json)
    .action(async (name: string, options: { json?: boolean }) => {
      const result = await (await adminClient()).groups.create.mutate({ name });
      output(Boolean(options.json), result, () => `group ${result.name} (${result.id})`);
    });
  group
    .command('add')
    .description('add an agent to a group')
    .argument('<name>')
    .requiredOption('--agent <id>', 'the agent')
    .addOption(json)
    .action(async (name: string, options: { agent: string; json?: boolean }) => {
      const result = await (await adminClient()).groups.addAgent.mutate({ group: name, agentId: options.agent });
      output(Boolean(options.json), result, () => `agent ${result.agentId} is in ${name}`);
    });
  group
    .command('remove')
    .alias('remove-agent')
    .description("take an agent out of a group: the group's grants stop applying to it")
    .argument('<name>')
    .requiredOption('--agent <id>', 'the agent')
    .addOption(json)
    .action(async (name: string, options: { agent: string; json?: boolean }) => {
      const result = await (await adminClient()).groups.removeAgent.mutate({ group: name, agentId: options.agent });
      output(Boolean(options.json), result, () => `agent ${result.agentId} is no longer in ${name}`);
    });

  program
    .command('report')
    .description('reports')
    .command('least-privilege')
    .description('per agent: grants no run used, and the narrow scopes the runs actually needed')
    .option('--days <n>', 'how far back runs count as use (1 to 365)', '30')
    .addOption(json)
    .action(async (options: { days: string; json?: boolean }) => {
      const report = await (await adminClient()).reports.leastPrivilege.query({ days: Number(options.days) });
      output(Boolean(options.json), report, () =>
        report.agents.flatMap((agent) => [
          `agent ${agent.agentId} (${agent.hostname}): ${agent.runs} run(s) in ${report.days} days`,
          ...agent.unused.map((g) => `  unused  ${g.grantId}  ${g.scope}`),
          ...agent.used
            .filter((g) => g.suggested.length !== 1 || g.suggested[0] !== g.scope)
            .map((g) => `  narrow  ${g.grantId}  ${g.scope}  ->  ${g.suggested.join(', ')}`),
          ...agent.uncovered.map((scope) => `  ungranted  ${scope}`),
        ]),
      );
    });

  const audit = program.command('audit').description('the audit trail');
  audit
    .command('list')
    .option('--action <name>', 'only this action')
    .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(['success', 'failure', 'denied']))
    .option('--after <seq>', 'only events after this sequence number')
    .option('--limit <n>', 'how many', '100')
    .addOption(json)
    .action(async (options: { action?: string; outcome?: 'success' | 'failure' | 'denied'; after?: string; limit: string; json?: boolean }) => {
      const rows = await (await adminClient()).audit.list.query({
        action: options.action,
        outcome: options.outcome,
        afterSeq: options.after === undefined ? undefined : Number(options.after),
        limit: Number(options.limit),
      });
      output(Boolean(options.json), rows, () =>
        rows.map((r) => `${String(r.seq).padStart(5)}  ${r.at}  ${r.outcome.padEnd(7)}  ${r.action}  ${r.actor.type}:${r.actor.id ?? '-'}  ${r.target ?? ''}`),
      );
    });

  audit
    .command('checkpoint')
    .description('sign every audit chain head now (on the server; the server also does it periodically)')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const { createCheckpoint, migrate } = await import('@airlock/api');
      const { loadServerConfig, loadSigner } = await import('./config.ts');
      const { openDatabase } = await import('./server.ts');
      const config = loadServerConfig();
      const signer = await loadSigner(config);
      const db = await openDatabase(config, { command: 'airlock audit checkpoint', instead: 'or leave it to the server, which signs the head every AIRLOCK_CHECKPOINT_INTERVAL_MS' });
      try {
        await migrate(db);
        // Every tenant's chain head goes into the tree: system scope.
        const result = await createCheckpoint(db.forSystem(), signer);
        output(Boolean(options.json), result, () =>
          result
            ? `checkpoint ${result.checkpoint.number}: root ${result.checkpoint.root} over ${result.checkpoint.size} chains (${result.created ? 'signed' : 'already signed'}, key ${result.checkpoint.keyId})`
            : 'the audit trail is empty',
        );
      } finally {
        await db.close();
      }
    });
  audit
    .command('verify')
    .description("verify every audit chain against every signed checkpoint (on the server, or one tenant's export offline with --from-file); exits 1 if it does not hold")
    .option('--public-key <base64>', "the control plane's public key (default: this server's signing key)")
    .option('--from-file <jsonl>', 'verify a JSON Lines export (records and checkpoints) instead of the database; needs --public-key')
    .addOption(json)
    .action(async (options: { publicKey?: string; fromFile?: string; json?: boolean }) => {
      const { verifyStoredAudit } = await import('@airlock/api');
      const { verifyExportFile } = await import('./audit-commands.ts');
      const { loadServerConfig, loadSigner } = await import('./config.ts');
      const { openDatabase } = await import('./server.ts');
      let result: StoredAuditVerification | ExportVerification;
      if (options.fromFile !== undefined) {
        if (options.publicKey === undefined) throw new UserError('--from-file needs --public-key (see controlPlane.identity)');
        result = await verifyExportFile(options.fromFile, await publicKeyOption(options.publicKey));
      } else {
        const config = loadServerConfig();
        const publicKey = options.publicKey === undefined ? (await loadSigner(config, { create: false })).publicKey : await publicKeyOption(options.publicKey);
        const db = await openDatabase(config, {
          command: 'airlock audit verify',
          instead: 'or verify through the server: `airlock audit export --out audit.jsonl` (AIRLOCK_URL, AIRLOCK_API_KEY), then `airlock audit verify --from-file audit.jsonl --public-key <key>`',
        });
        try {
          // The whole trail, every tenant's chain: system scope.
          result = await verifyStoredAudit(db.forSystem(), publicKey);
        } finally {
          await db.close();
        }
      }
      output(Boolean(options.json), result, () =>
        result.ok
          ? `ok: ${result.count} events${'chains' in result ? ` in ${result.chains} chains` : result.head ? `, head ${result.head.seq} ${result.head.hash}` : ''}, ${result.checkpoints} checkpoints hold`
          : `NOT OK at seq ${result.seq}${'tenantId' in result && result.tenantId !== undefined ? ` of chain ${result.tenantId ?? 'system'}` : ''}: ${result.reason}`,
      );
      if (!result.ok) process.exitCode = 1;
    });
  audit
    .command('export')
    .description('export audit events; unfiltered JSON Lines include the signed checkpoints and verify offline')
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
    .option('--action <name>', 'only this action')
    .option('--actor <type[:id]>', 'only this actor, e.g. api-key:<id> or system')
    .option('--target <target>', 'only this target')
    .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(['success', 'failure', 'denied']))
    .option('--since <iso>', 'events at or after this time (ISO 8601)')
    .option('--until <iso>', 'events before this time (ISO 8601)')
    .option('--out <file>', 'write here (created 0600, never overwritten) instead of stdout')
    .action(async (options: ExportFilter & { format: 'jsonl' | 'csv'; out?: string }) => {
      const { exportAudit, openOutput } = await import('./audit-commands.ts');
      const client = await adminClient();
      const { format, out: file, ...filter } = options;
      const sink = await openOutput(file);
      try {
        const counts = await exportAudit(
          { list: (input) => client.audit.list.query(input), checkpoints: (input) => client.audit.checkpoints.query(input) },
          { format, filter, out: sink.out },
        );
        if (file !== undefined) process.stderr.write(`exported ${counts.events} events and ${counts.checkpoints} checkpoints to ${file}\n`);
      } finally {
        await sink.close();
      }
    });

  addAlertCommands(program, adminClient, output);
  addOAuthCommands(program, adminClient, output);
  addUpdateCommands(program, adminClient, output);
  addSsoCommands(program, adminClient, output);
  program
    .command('signing-key')
    .description("the control plane's signing key, which agents pin")
    .command('rotate')
    .description('create a successor key and a rotation statement signed by the current key, which agents follow; then point AIRLOCK_SIGNING_KEY_FILE at the new key')
    .requiredOption('--out <file>', 'where to write the new secret key (created 0600, never overwritten)')
    .addOption(json)
    .action(async (options: { out: string; json?: boolean }) => {
      const { migrate, recordKeyRotation } = await import('@airlock/api');
      const { encodeKey, generateKeyPair, keyFingerprint } = await import('@airlock/identity');
      const { loadServerConfig, loadSigner } = await import('./config.ts');
      const { openDatabase } = await import('./server.ts');
      const config = loadServerConfig();
      const current = await loadSigner(config, { create: false });
      const next = generateKeyPair();
      const file = path.resolve(options.out);
      // Opened before the key is written, so a refusal leaves no orphan key file behind.
      const db = await openDatabase(config, { command: 'airlock signing-key rotate', instead: 'rotate, then start it again with the new key' });
      try {
        await writeFile(file, `${encodeKey(next.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
        await migrate(db);
        await recordKeyRotation(db, current, next.publicKey);
      } finally {
        await db.close();
      }
      const result = { previous: keyFingerprint(current.publicKey), next: keyFingerprint(next.publicKey), keyFile: file };
      output(Boolean(options.json), result, () =>
        `rotated ${result.previous} -> ${result.next}; set AIRLOCK_SIGNING_KEY_FILE=${file} and restart every replica (agents follow the signed rotation)`,
      );
    });

  program
    .command('security-events')
    .description('what agents refused and reported: forged or replayed envelopes, policy violations, audit alerts (metadata only)')
    .option('--agent <id>', 'only this agent')
    .option('--limit <n>', 'how many, newest first', '100')
    .addOption(json)
    .action(async (options: { agent?: string; limit: string; json?: boolean }) => {
      const rows = await (await adminClient()).custody.securityEvents.query({ agentId: options.agent, limit: Number(options.limit) });
      output(Boolean(options.json), rows, () => rows.map((r) => `${r.at}  agent ${r.agentId}  ${r.kind.padEnd(26)}  ${r.runId ?? '-'}  ${r.reason}`));
    });

  const receipts = program.command('receipts').description("the agents' signed delivery receipts");
  receipts
    .command('export')
    .description("write a run's receipts as JSON Lines, one signed receipt per delivered file")
    .argument('<runId>')
    .option('--out <file>', 'write here (created 0600, never overwritten) instead of stdout')
    .action(async (runId: string, options: { out?: string }) => {
      const { openOutput } = await import('./audit-commands.ts');
      const { writeReceipts } = await import('./receipt-commands.ts');
      const current = await (await adminClient()).runs.get.query({ id: runId });
      const sink = await openOutput(options.out);
      try {
        const count = writeReceipts([current.report], sink.out);
        if (options.out !== undefined) process.stderr.write(`exported ${count} receipts to ${options.out}\n`);
      } finally {
        await sink.close();
      }
    });
  receipts
    .command('verify')
    .description("check exported receipts offline against the agent's Ed25519 public key; exits 1 unless every one verifies")
    .requiredOption('--file <jsonl>', 'receipts, one signed receipt per line (see `airlock receipts export`)')
    .requiredOption('--agent-key <base64>', "the agent's public key (`airlock-agent status` prints it)")
    .addOption(json)
    .action(async (options: { file: string; agentKey: string; json?: boolean }) => {
      const { verifyReceiptsFile } = await import('./receipt-commands.ts');
      const result = await verifyReceiptsFile(options.file, await publicKeyOption(options.agentKey, '--agent-key'));
      output(Boolean(options.json), result, () =>
        [
          `${result.ok ? 'ok' : 'NOT OK'}: ${result.verified.length} of ${result.receipts} receipts verify`,
          ...result.failures.map((failure) => `  line ${failure.line}: ${failure.reason}`),
        ],
      );
      if (!result.ok) process.exitCode = 1;
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  try {
    await buildProgram({ jsonErrors: json }).parseAsync(argv);
  } catch (error) {
    // Commander ends `--help` and `--version` by throwing too, with status 0.
    if (isCommanderExit(error) && error.exitCode === 0) return;
    const shown = forPerson(error);
    process.exitCode = shown.exitCode;
    // Commander already printed its own complaint, and the help after it.
    if (isCommanderExit(error) && !json) return;
    process.stderr.write(json ? `${printableJson(personErrorJson(shown))}\n` : `airlock: ${printableLine(shown.message)}\n`);
  }
}

function isCommanderExit(error: unknown): error is { code: string; exitCode: number } {
  if (typeof error !== 'object' || error === null) return false;
  const code: unknown = Reflect.get(error, 'code');
  return typeof code === 'string' && code.startsWith('commander.') && typeof Reflect.get(error, 'exitCode') === 'number';
}
