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
import { readFile, stat } from 'node:fs/promises';
import YAML from 'yaml';
import { z } from 'zod';
import { NotFoundError, UserError } from '@airlock/errors';

const entry = z.union([
  z.strictObject({ password: z.string().min(1) }),
  z.strictObject({ privateKey: z.string().min(1), passphrase: z.string().optional() }),
  z.strictObject({ privateKeyFile: z.string().min(1), passphrase: z.string().optional() }),
]);
const secretsFileSchema = z.record(z.string().min(1), entry);

export type SecretResolver = (ref: string) => Promise<Readonly<Record<string, string>>>;

export async function loadSecrets(file: string): Promise<SecretResolver> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return async (ref) => {
      throw new NotFoundError(`credential ${JSON.stringify(ref)}: no secrets file at ${file}`);
    };
  }
  if (((await stat(file)).mode & 0o077) !== 0) throw new UserError(`${file} is readable by others: chmod 600 it`);
  const parsed = secretsFileSchema.safeParse(YAML.parse(text));
  // Report where the problem is, never the values.
  if (!parsed.success) throw new UserError(`${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: invalid entry`).join('; ')}`);
  const secrets = parsed.data;
  return async (ref) => {
    const found = secrets[ref];
    if (!found) throw new NotFoundError(`credential ${JSON.stringify(ref)} is not in ${file}`);
    const resolved: Record<string, string> = {};
    if ('password' in found) resolved['password'] = found.password;
    else resolved['privateKey'] = 'privateKeyFile' in found ? await readFile(found.privateKeyFile, 'utf8') : found.privateKey;
    if ('passphrase' in found && found.passphrase !== undefined) resolved['passphrase'] = found.passphrase;
    return resolved;
  };
}
