/**
 * The agent's local secrets file: credentials for sources, by reference. The control plane only
 * ever sees the reference names; the values stay on this host.
 *
 *   demo-sftp:
 *     password: "..."
 *   partner-sftp:
 *     privateKeyFile: /etc/airlock/keys/id_ed25519
 *     passphrase: "..."        # optional
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { NotFoundError, UserError } from '@airlock/errors';
import { readAdminFile } from './files.ts';

const entry = z.union([
  z.strictObject({ password: z.string().min(1) }),
  z.strictObject({ privateKey: z.string().min(1), passphrase: z.string().optional() }),
  z.strictObject({ privateKeyFile: z.string().min(1), passphrase: z.string().optional() }),
]);
const secretsFileSchema = z.record(z.string().min(1), entry);

export type SecretResolver = (ref: string) => Promise<Readonly<Record<string, string>>>;

/** Every problem with the file, by place only: a parser's message may quote the line, and the line may be a secret. */
export function parseSecrets(text: string, file: string): SecretResolver {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { prettyErrors: false });
  } catch (error) {
    const line = error instanceof YAML.YAMLParseError ? error.linePos?.[0].line : undefined;
    throw new UserError(`${file}: not valid YAML${line === undefined ? '' : ` (line ${line})`}`);
  }
  const parsed = secretsFileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new UserError(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: invalid entry`).join('; ')}`);
  const secrets = parsed.data;
  return async (ref) => {
    const found = secrets[ref];
    if (!found) throw new NotFoundError(`credential ${JSON.stringify(ref)} is not in ${file}`, { safeReason: `credential ${JSON.stringify(ref)} is not in ${path.basename(file)}` });
    const resolved: Record<string, string> = {};
    if ('password' in found) resolved['password'] = found.password;
    else resolved['privateKey'] = 'privateKeyFile' in found ? await readFile(found.privateKeyFile, 'utf8') : found.privateKey;
    if ('passphrase' in found && found.passphrase !== undefined) resolved['passphrase'] = found.passphrase;
    return resolved;
  };
}

/** Without a secrets file every credential lookup fails; a file open to group or others is refused. */
export async function loadSecrets(file: string): Promise<SecretResolver> {
  const text = await readAdminFile(file, true);
  if (text === undefined) {
    return async (ref) => {
      const message = `credential ${JSON.stringify(ref)}: no secrets file at ${file}`;
      throw new NotFoundError(message, { safeReason: message });
    };
  }
  return parseSecrets(text, file);
}
