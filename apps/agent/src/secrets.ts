/**
 * The agent's local secrets file: credentials for connectors, by reference. The control plane only
 * ever sees the reference names; the values stay on this host.
 *
 *   demo-sftp:
 *     password: "..."
 *   partner-sftp:
 *     privateKeyFile: /etc/airlock/keys/id_ed25519   # `<key>File`: the value is read from that file
 *     passphrase: "..."        # optional
 *   corporate-proxy:           # named by agent.json's proxy.credential
 *     username: airlock
 *     password: "..."
 *
 * Each entry must have the shape some registered connector declares (`definition.secrets`), checked
 * when the file is loaded; the connector that asks for it checks it against its own shape again.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import type { ConnectorRegistry } from '@airlock/connector-api';
import { formatIssues, NotFoundError, UserError } from '@airlock/errors';
import { builtInConnectors } from './connectors.ts';
import { proxyCredentialSchema } from './egress.ts';
import { readAdminFile } from './files.ts';

const FROM_FILE = /^(.+)File$/;
const entry = z.record(z.string().min(1), z.string());
const secretsFileSchema = z.record(z.string().min(1), entry);

export type SecretResolver = (ref: string) => Promise<Readonly<Record<string, string>>>;

/** The entry as a connector receives it, with `<key>File` values standing in for the file's contents. */
function withFilesNamed(found: Readonly<Record<string, string>>, read: (file: string) => string): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const [key, value] of Object.entries(found)) {
    const fromFile = FROM_FILE.exec(key)?.[1];
    resolved[fromFile ?? key] = fromFile === undefined ? value : read(value);
  }
  return resolved;
}

/** Every problem with the file, by place only: a parser's message may quote the line, and the line may be a secret. */
export function parseSecrets(text: string, file: string, registry: ConnectorRegistry = builtInConnectors()): SecretResolver {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { prettyErrors: false });
  } catch (error) {
    const line = error instanceof YAML.YAMLParseError ? error.linePos?.[0].line : undefined;
    throw new UserError(`${file}: not valid YAML${line === undefined ? '' : ` (line ${line})`}`);
  }
  const parsed = secretsFileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new UserError(`${file}: ${formatIssues(parsed.error.issues.map((issue) => ({ path: issue.path, message: 'invalid entry' })))}`);
  const secrets = parsed.data;
  // Besides the connectors' credentials, the file may hold a proxy's (agent.json's proxy.credential names it).
  const shapes = [proxyCredentialSchema, ...registry.definitions().flatMap((definition) => (definition.secrets ? [definition.secrets] : []))];
  // A file path is checked for shape with a stand-in; its contents are read only when asked for.
  const misfits = Object.entries(secrets)
    .filter(([, found]) => !shapes.some((shape) => shape.safeParse(withFilesNamed(found, () => 'file')).success))
    .map(([ref]) => ref);
  if (misfits.length > 0) {
    throw new UserError(`${file}: ${misfits.map((ref) => `${ref}: not the secrets shape of any registered connector`).join('; ')}`);
  }
  return async (ref) => {
    const found = secrets[ref];
    if (!found) throw new NotFoundError(`credential ${JSON.stringify(ref)} is not in ${file}`, { safeReason: `credential ${JSON.stringify(ref)} is not in ${path.basename(file)}` });
    const files = new Map<string, string>();
    for (const [key, value] of Object.entries(found)) if (FROM_FILE.test(key)) files.set(value, await readFile(value, 'utf8'));
    return withFilesNamed(found, (name) => files.get(name) ?? '');
  };
}

/** Without a secrets file every credential lookup fails; a file open to group or others is refused. */
export async function loadSecrets(file: string, registry?: ConnectorRegistry): Promise<SecretResolver> {
  const text = await readAdminFile(file, true);
  if (text === undefined) {
    return async (ref) => {
      const message = `credential ${JSON.stringify(ref)}: no secrets file at ${file}`;
      throw new NotFoundError(message, { safeReason: message });
    };
  }
  return parseSecrets(text, file, registry);
}
