/**
 * `airlock sso ...`: the tenant's OpenID Connect providers, the claim-value -> role mapping each
 * one applies at every sign-in, and how the tenant's people sign in (local passwords, required
 * second factor). A provider's client secret is read from a file or standard input, never from the
 * command line, where other users of the machine could read it.
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { TRPCClient } from '@trpc/client';
import type { AppRouter } from '@airlock/api/router';
import { UserError } from '@airlock/errors';
import type { Output } from './output.ts';

const ROLES = ['owner', 'admin', 'operator', 'auditor'] as const;
type Role = (typeof ROLES)[number];

/** The client secret from `--client-secret-file`, `-` meaning standard input; surrounding whitespace is a file's, not the secret's. */
async function clientSecretFrom(file: string): Promise<string> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new UserError(`--client-secret-file ${file}: cannot be read`, { cause: error });
  }
  const secret = text.trim();
  if (secret === '') throw new UserError(`--client-secret-file ${file}: empty`);
  return secret;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/** `--map <claim-value>=<role>`, repeatable; the last `=` separates, so a claim value may hold one. */
function mapOption(text: string, previous: Array<{ claimValue: string; role: Role }> = []): Array<{ claimValue: string; role: Role }> {
  const separator = text.lastIndexOf('=');
  const claimValue = separator < 0 ? '' : text.slice(0, separator);
  const role = separator < 0 ? '' : text.slice(separator + 1);
  const known = ROLES.find((candidate) => candidate === role);
  if (claimValue === '' || known === undefined) throw new UserError(`--map ${text}: expected <claim value>=<role>, the role one of ${ROLES.join(', ')}`);
  return [...previous, { claimValue, role: known }];
}

function onOff(name: string) {
  return new Option(`--${name} <on|off>`).choices(['on', 'off']);
}

interface ProviderView {
  id: string;
  name: string;
  issuer: string;
  clientId: string;
  roleClaim: string;
  enabled: boolean;
  lastOwnerSignInAt: string | null;
  mappings: Array<{ claimValue: string; role: string }>;
}

function providerLines(p: ProviderView): string[] {
  return [
    `${p.id}  ${p.name}  ${p.issuer}  client ${p.clientId}  claim ${p.roleClaim}${p.enabled ? '' : '  DISABLED'}  owner sign-in ${p.lastOwnerSignInAt ?? 'never'}`,
    ...(p.mappings.length === 0 ? ['  (no mapping: nobody signing in through it gets access)'] : p.mappings.map((m) => `  ${m.claimValue} -> ${m.role}`)),
  ];
}

export function addSsoCommands(program: Command, client: () => Promise<TRPCClient<AppRouter>>, output: Output): void {
  const json = new Option('--json', 'print JSON');
  const sso = program.command('sso').description('single sign-on: OpenID Connect providers, their group -> role mappings, and how people sign in (owner only)');

  const provider = sso.command('provider').description('OpenID Connect providers of this tenant (client secrets sealed, never shown)');
  provider
    .command('list')
    .addOption(json)
    .action(async (options: { json?: boolean }) => {
      const rows = await (await client()).sso.providers.query();
      output(Boolean(options.json), rows, () => (rows.length === 0 ? ['no identity providers'] : rows.flatMap(providerLines)));
    });
  provider
    .command('create')
    .requiredOption('--name <name>', 'shown on the login page')
    .requiredOption('--issuer <url>', 'the issuer identifier, exactly as its ID tokens name it')
    .requiredOption('--client-id <id>', "this tenant's client id at the provider")
    .requiredOption('--client-secret-file <file>', 'a file holding the client secret (- for standard input)')
    .option('--role-claim <claim>', 'the ID token claim mapped to roles', 'groups')
    .option('--map <value=role>', 'map a claim value to a role (repeatable); without any, nobody gets access yet', mapOption)
    .addOption(json)
    .action(async (options: { name: string; issuer: string; clientId: string; clientSecretFile: string; roleClaim: string; map?: Array<{ claimValue: string; role: Role }>; json?: boolean }) => {
      const clientSecret = await clientSecretFrom(options.clientSecretFile);
      const trpc = await client();
      const created = await trpc.sso.createProvider.mutate({ name: options.name, issuer: options.issuer, clientId: options.clientId, clientSecret, roleClaim: options.roleClaim });
      const mappings = options.map ? await trpc.sso.setMappings.mutate({ providerId: created.id, mappings: options.map }) : created.mappings;
      const result = { ...created, mappings };
      output(Boolean(options.json), result, () => providerLines(result));
    });
  provider
    .command('update')
    .argument('<id>')
    .option('--name <name>')
    .option('--role-claim <claim>')
    .option('--client-secret-file <file>', 'a new client secret from this file (- for standard input)')
    .addOption(new Option('--enable', 'let people sign in through it').conflicts('disable'))
    .addOption(new Option('--disable', 'stop sign-ins through it (refused if it is the last way an owner signs in)'))
    .addOption(json)
    .action(async (id: string, options: { name?: string; roleClaim?: string; clientSecretFile?: string; enable?: boolean; disable?: boolean; json?: boolean }) => {
      const clientSecret = options.clientSecretFile === undefined ? undefined : await clientSecretFrom(options.clientSecretFile);
      const enabled = options.enable ? true : options.disable ? false : undefined;
      if (options.name === undefined && options.roleClaim === undefined && clientSecret === undefined && enabled === undefined) {
        throw new UserError('nothing to change: give --name, --role-claim, --client-secret-file, --enable or --disable');
      }
      const result = await (await client()).sso.updateProvider.mutate({
        id,
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.roleClaim === undefined ? {} : { roleClaim: options.roleClaim }),
        ...(clientSecret === undefined ? {} : { clientSecret }),
        ...(enabled === undefined ? {} : { enabled }),
      });
      output(Boolean(options.json), result, () => providerLines(result));
    });
  provider
    .command('delete')
    .argument('<id>')
    .addOption(json)
    .action(async (id: string, options: { json?: boolean }) => {
      const result = await (await client()).sso.deleteProvider.mutate({ id });
      output(Boolean(options.json), result, () => `deleted identity provider ${id}`);
    });

  const mapping = sso.command('mapping').description("a provider's claim value -> role mapping, applied at every sign-in");
  mapping
    .command('list')
    .argument('<provider-id>')
    .addOption(json)
    .action(async (providerId: string, options: { json?: boolean }) => {
      const found = (await (await client()).sso.providers.query()).find((p) => p.id === providerId);
      if (!found) throw new UserError(`no identity provider ${providerId} in this tenant`);
      output(Boolean(options.json), found.mappings, () => (found.mappings.length === 0 ? ['no mapping: nobody signing in through it gets access'] : found.mappings.map((m) => `${m.claimValue} -> ${m.role}`)));
    });
  mapping
    .command('set')
    .description('replace the whole mapping; people left without a mapped value lose access at their next sign-in')
    .argument('<provider-id>')
    .option('--map <value=role>', 'map a claim value to a role (repeatable)', mapOption)
    .option('--none', 'clear the mapping: nobody signing in through this provider gets access')
    .addOption(json)
    .action(async (providerId: string, options: { map?: Array<{ claimValue: string; role: Role }>; none?: boolean; json?: boolean }) => {
      if (Boolean(options.none) === Boolean(options.map)) throw new UserError('give --map (repeatable) or --none');
      const result = await (await client()).sso.setMappings.mutate({ providerId, mappings: options.map ?? [] });
      output(Boolean(options.json), result, () => (result.length === 0 ? ['mapping cleared'] : result.map((m) => `${m.claimValue} -> ${m.role}`)));
    });

  sso
    .command('settings')
    .description("show, or change, how this tenant's people sign in")
    .addOption(onOff('local-passwords').default(undefined, 'unchanged'))
    .option('--break-glass <user-id>', 'with --local-passwords off: the local owner who keeps a password')
    .addOption(onOff('require-second-factor').default(undefined, 'unchanged'))
    .addOption(json)
    .action(async (options: { localPasswords?: 'on' | 'off'; breakGlass?: string; requireSecondFactor?: 'on' | 'off'; json?: boolean }) => {
      if (options.breakGlass !== undefined && options.localPasswords !== 'off') throw new UserError('--break-glass goes with --local-passwords off');
      const trpc = await client();
      if (options.requireSecondFactor !== undefined) await trpc.sso.setRequireSecondFactor.mutate({ enabled: options.requireSecondFactor === 'on' });
      if (options.localPasswords !== undefined) {
        await trpc.sso.setLocalPasswords.mutate({ enabled: options.localPasswords === 'on', ...(options.breakGlass === undefined ? {} : { breakGlassUserId: options.breakGlass }) });
      }
      const settings = await trpc.sso.settings.query();
      output(Boolean(options.json), settings, () => [
        `local passwords: ${settings.localPasswords ? 'on' : `off (break-glass owner ${settings.breakGlassUserId ?? '-'})`}`,
        `second factor required for owners and admins: ${settings.requireSecondFactor ? 'yes' : 'no'}`,
      ]);
    });
}
