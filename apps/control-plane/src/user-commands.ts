/**
 * `airlock user create|list|unlock`: console accounts, managed on the server against its database
 * (like `bootstrap`), so the first console login needs no API key. A password is read from standard
 * input only: on the command line it would sit in the shell history and the process list.
 */
import { type Command, Option } from 'commander';
import type { AdminUser, Role } from '@airlock/auth';
import type { Database } from '@airlock/storage';
import { UserError } from '@airlock/errors';
import { adminRole } from '@airlock/protocol';
import { output as print } from './output.ts';

const MAX_STDIN_BYTES = 4096;

/** The whole of standard input, less one trailing line break (what `echo` and here-strings add). */
export async function readPasswordFromStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  if ('isTTY' in stdin && stdin.isTTY === true) throw new UserError('--password-stdin: pipe the password in, e.g. from a password manager');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new UserError(`--password-stdin: more than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function withDatabase<T>(command: string, fn: (db: Database) => Promise<T>): Promise<T> {
  // Loaded here, not at the top: `airlock --help` registers these commands without opening a database.
  const { migrate } = await import('@airlock/api');
  const { loadServerConfig } = await import('./config.ts');
  const { openDatabase } = await import('./server.ts');
  const db = await openDatabase(loadServerConfig(), { command, instead: 'or manage console users on the Users page of the running console' });
  try {
    await migrate(db);
    return await fn(db.forSystem());
  } finally {
    await db.close();
  }
}

function describeUser(user: AdminUser): string {
  const state = user.disabled ? '  DISABLED' : user.lockedUntil && Date.parse(user.lockedUntil) > Date.now() ? `  locked until ${user.lockedUntil}` : '';
  return `${user.id}  ${user.email}  ${user.role.padEnd(8)}  last login ${user.lastLoginAt ?? 'never'}${state}`;
}

export function registerUserCommands(program: Command): void {
  const json = new Option('--json', 'print JSON');
  const user = program.command('user').description('console admin accounts (on the server, against its database)');
  user
    .command('create')
    .description('create a console account; the password (at least 12 characters) is read from standard input')
    .requiredOption('--tenant <name>', 'tenant name')
    .requiredOption('--email <email>', 'login email, unique within the tenant')
    .addOption(new Option('--role <role>', 'its role').choices(adminRole.options).makeOptionMandatory())
    .option('--password-stdin', 'read the password from standard input (required)')
    .addOption(json)
    .action(async (options: { tenant: string; email: string; role: Role; passwordStdin?: boolean; json?: boolean }) => {
      const { checkPasswordPolicy, createAdminUserInTenant } = await import('@airlock/api');
      if (!options.passwordStdin) throw new UserError('give --password-stdin and pipe the password in; it is never taken from arguments');
      const password = await readPasswordFromStdin();
      checkPasswordPolicy(password);
      const created = await withDatabase('airlock user create', (db) => createAdminUserInTenant(db, { tenant: options.tenant, email: options.email, role: options.role, password }));
      print(Boolean(options.json), created, () => `created ${created.role} ${created.email} (${created.id}) in tenant ${options.tenant}`);
    });
  user
    .command('list')
    .requiredOption('--tenant <name>', 'tenant name')
    .addOption(json)
    .action(async (options: { tenant: string; json?: boolean }) => {
      const { listAdminUsers, tenantIdOf } = await import('@airlock/api');
      const users = await withDatabase('airlock user list', async (db) => listAdminUsers(db, await tenantIdOf(db, options.tenant)));
      print(Boolean(options.json), users, () => users.map(describeUser));
    });
  user
    .command('unlock')
    .description('clear a lockout after failed logins')
    .requiredOption('--tenant <name>', 'tenant name')
    .requiredOption('--email <email>', 'the account')
    .addOption(json)
    .action(async (options: { tenant: string; email: string; json?: boolean }) => {
      const { tenantIdOf, unlockAdminUser } = await import('@airlock/api');
      const unlocked = await withDatabase('airlock user unlock', (db) =>
        db.transaction(async (tx) =>
          unlockAdminUser(tx, await tenantIdOf(tx, options.tenant), { email: options.email }, { actor: { type: 'system', id: 'cli' }, sourceIp: null }, new Date()),
        ),
      );
      print(Boolean(options.json), unlocked, () => `unlocked ${unlocked.email}`);
    });
}
