/**
 * `airlock oauth-client ...`: OAuth 2.0 clients of API consumers (client credentials grant), and
 * `airlock requests ...`: the API request log (search, export, retention). A client secret is
 * printed once, on create and rotate; a private_key_jwt client registers a JWKS file of public keys.
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@airlock/api/router';
import { formatIssues, UserError } from '@airlock/errors';
import { requestCallerTypes, requestLogCsv, requestLogJsonl, type RequestLogRow } from '@airlock/protocol';
import { type Output, printableLine } from './output.ts';

type Role = 'owner' | 'admin' | 'operator' | 'auditor';

function listOption(text: string, previous: string[] = []): string[] {
  return [...previous, ...text.split(',').map((item) => item.trim()).filter((item) => item !== '')];
}

async function jwksFile(file: string) {
  const { clientJwks } = await import('@airlock/api');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new UserError(`--jwks ${file}: not JSON`, { cause: error });
  }
  const jwks = clientJwks.safeParse(parsed);
  if (!jwks.success) throw new UserError(`--jwks ${file}: expected a JSON Web Key Set ({"keys": [...]}) of public keys: ${formatIssues(jwks.error.issues)}`);
  return jwks.data;
}

async function permissionsOption(names: readonly string[]) {
  const { permissions } = await import('@airlock/api');
  const unknown = names.filter((name) => !permissions.some((permission) => permission === name));
  if (unknown.length > 0) throw new UserError(`--permissions: unknown ${unknown.join(', ')} (one of ${permissions.join(', ')})`);
  return permissions.filter((permission) => names.includes(permission));
}

export function addOAuthCommands(program: Command, client: () => Promise<TRPCClient<AppRouter>>, output: Output): void {
  const json = new Option('--json', 'print JSON');
  const oauth = program.command('oauth-client').description('OAuth 2.0 clients of API consumers (client credentials; secrets shown once, stored hashed)');
  oauth
    .command('create')
    .requiredOption('--name <name>', 'a label for the client')
    .addOption(new Option('--role <role>', 'its role; never above your own').choices(['owner', 'admin', 'operator', 'auditor']).makeOptionMandatory())
    .option('--permissions <list>', 'only these of the role\'s permissions (comma-separated)', listOption)
    .option('--read-only', 'only the role\'s read permissions')
    .option('--integrations <names>', 'only these integrations (comma-separated names)', listOption)
    .option('--jwks <file>', 'authenticate with private_key_jwt, signed by a key of this JWKS file (default: a client secret)')
    .addOption(json)
    .action(async (options: { name: string; role: Role; permissions?: string[]; readOnly?: boolean; integrations?: string[]; jwks?: string; json?: boolean }) => {
      const jwks = options.jwks === undefined ? undefined : await jwksFile(options.jwks);
      const result = await (await client()).oauthClients.create.mutate({
        name: options.name,
        role: options.role,
        authMethod: jwks === undefined ? 'client_secret_basic' : 'private_key_jwt',
        ...(options.permissions ? { permissions: await permissionsOption(options.permissions) } : {}),
        readOnly: Boolean(options.readOnly),
        ...(options.integrations ? { integrations: options.integrations } : {}),
        ...(jwks === undefined ? {} : { jwks }),
      });
      output(Boolean(options.json), result, () =>
        result.clientSecret === null
          ? [`OAuth client ${result.id}`, `client_id: ${result.clientId} (authenticates with private_key_jwt)`]
          : [`OAuth client ${result.id}`, `client_id: ${result.clientId}`, `client_secret (shown once): ${result.clientSecret}`],
      );
    });
  oauth
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await client()).oauthClients.list.query();
      output(Boolean(options.json), rows, () =>
        rows.map((r) => {
          const limits = [r.readOnly ? 'read-only' : '', r.permissions ? `permissions ${r.permissions.join(',')}` : '', r.integrations ? `integrations ${r.integrations.names.join(',')}` : '']
            .filter((part) => part !== '')
            .join('; ');
          return `${r.id}  ${r.clientId}  ${r.role.padEnd(8)}  ${r.authMethod.padEnd(19)}  ${r.name}${limits ? `  (${limits})` : ''}  last used ${r.lastUsedAt ?? 'never'}${r.disabledAt ? '  DISABLED' : ''}`;
        }),
      );
    });
  oauth
    .command('rotate')
    .description('a new secret (or, with --jwks, new public keys); the old one and every token issued with it stop at once')
    .argument('<id>')
    .option('--jwks <file>', 'the new JWKS of a private_key_jwt client')
    .addOption(json)
    .action(async (id: string, options: { jwks?: string; json?: boolean }) => {
      const jwks = options.jwks === undefined ? undefined : await jwksFile(options.jwks);
      const result = await (await client()).oauthClients.rotate.mutate({ id, ...(jwks === undefined ? {} : { jwks }) });
      output(Boolean(options.json), result, () =>
        result.clientSecret === null ? `rotated the keys of ${result.clientId}` : [`rotated ${result.clientId}`, `client_secret (shown once): ${result.clientSecret}`],
      );
    });
  for (const [name, description] of [
    ['disable', 'refuse new tokens and end live ones at once'],
    ['enable', 'let a disabled client get tokens again'],
    ['delete', 'remove the client; its tokens stop at once'],
  ] as const) {
    oauth
      .command(name)
      .description(description)
      .argument('<id>')
      .addOption(json)
      .action(async (id: string, options: { json?: boolean }) => {
        const result = await (await client()).oauthClients[name].mutate({ id });
        output(Boolean(options.json), result, () => `${name}d OAuth client ${result.id}`);
      });
  }

  const requests = program.command('requests').description('the API request log: who called what, when, with what outcome (never bodies or credentials)');
  requests
    .command('list')
    .option('--since <time>', 'from this time (ISO 8601) on')
    .option('--until <time>', 'before this time (ISO 8601)')
    .addOption(new Option('--caller-type <type>', 'only this kind of caller').choices(requestCallerTypes))
    .option('--caller <id>', 'only this caller id (user, API key, OAuth client or agent id)')
    .option('--procedure <name>', 'only requests calling this procedure (e.g. integrations.runNow, oauth.token)')
    .option('--outcome <outcome>', 'ok, error, or an exact code (UNAUTHORIZED, invalid_client, ...)')
    .option('--ip <address>', 'only from this source IP')
    .option('--request-id <uuid>', 'the request with this id (the x-request-id response header)')
    .option('--limit <n>', 'how many, newest first (all pages up to this many)', '100')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'jsonl']).default('table'))
    .addOption(json)
    .action(
      async (options: {
        since?: string;
        until?: string;
        callerType?: (typeof requestCallerTypes)[number];
        caller?: string;
        procedure?: string;
        outcome?: string;
        ip?: string;
        requestId?: string;
        limit: string;
        format: 'table' | 'csv' | 'jsonl';
        json?: boolean;
      }) => {
        const wanted = Number(options.limit);
        if (!Number.isInteger(wanted) || wanted < 1 || wanted > 100_000) throw new UserError('--limit: 1 to 100000');
        const trpc = await client();
        const rows: RequestLogRow[] = [];
        let before: string | undefined;
        while (rows.length < wanted) {
          const page = await trpc.requests.list.query({
            ...(options.since ? { from: new Date(options.since).toISOString() } : {}),
            ...(options.until ? { to: new Date(options.until).toISOString() } : {}),
            ...(options.callerType ? { callerType: options.callerType } : {}),
            ...(options.caller ? { callerId: options.caller } : {}),
            ...(options.procedure ? { procedure: options.procedure } : {}),
            ...(options.outcome ? { outcome: options.outcome } : {}),
            ...(options.ip ? { sourceIp: options.ip } : {}),
            ...(options.requestId ? { requestId: options.requestId } : {}),
            ...(before ? { before } : {}),
            limit: Math.min(1_000, wanted - rows.length),
          });
          rows.push(...page.rows);
          if (page.nextBefore === null) break;
          before = page.nextBefore;
        }
        // CSV and JSONL are exports: written as they are, each line escaped where a terminal could be acted on.
        if (options.format === 'csv') return void process.stdout.write(requestLogCsv(rows).split('\r\n').map(printableLine).join('\r\n'));
        if (options.format === 'jsonl') return void process.stdout.write(requestLogJsonl(rows).split('\n').map((line) => printableLine(line)).join('\n'));
        output(Boolean(options.json), rows, () =>
          rows.map((r) => `${r.at}  ${r.callerType.padEnd(12)}  ${(r.callerId ?? '-').padEnd(36)}  ${r.procedure}  ${r.status} ${r.outcome}  ${r.latencyMs} ms  ${r.sourceIp ?? '-'}  ${r.requestId}`),
        );
      },
    );
  requests
    .command('retention')
    .description('show, or with --days set, how long this tenant\'s request log is kept')
    .option('--days <n>', 'keep requests this many days (1 to 3650)')
    .addOption(json)
    .action(async (options: { days?: string; json?: boolean }) => {
      const trpc = await client();
      const result = options.days === undefined ? await trpc.requests.retention.query() : await trpc.requests.setRetention.mutate({ retentionDays: Number(options.days) });
      output(Boolean(options.json), result, () => `request log kept ${result.retentionDays} days`);
    });
}
