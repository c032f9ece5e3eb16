/**
 * The release key: an Ed25519 key, kept offline by whoever cuts releases and never given to a
 * control plane. Its public half ships in the agent package (/usr/share/airlock/release-key.pub),
 * and agents install only releases whose manifest it signed.
 *
 *   npm run -w @airlock/release release-key -- keygen --out <dir>
 *       writes release-key.secret (0600) and release-key.pub
 *   npm run -w @airlock/release release-key -- sign --key <secret file> --artifact <file> --version 1.2.3
 *       [--platform linux-x64] [--downgrade-allowed] [--min-version v] [--max-version v] --out <manifest.json>
 *       writes the signed manifest `airlock release publish --manifest` uploads with the artifact
 *
 * `npm run release -- --release-key <release-key.pub>` puts the public half into the agent package.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { encodeKey, generateKeyPair, keyPairFromSecretKey, signDetached, signStatement } from '@airlock/identity';
import { type ReleaseManifest, releaseManifest, releasePlatforms } from '@airlock/protocol';

export function signReleaseManifest(manifest: ReleaseManifest, secretKey: Uint8Array) {
  return signStatement('release', releaseManifest.parse(manifest), (message) => signDetached(message, secretKey));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' },
      key: { type: 'string' },
      artifact: { type: 'string' },
      version: { type: 'string' },
      platform: { type: 'string', default: 'linux-x64' },
      'downgrade-allowed': { type: 'boolean', default: false },
      'min-version': { type: 'string' },
      'max-version': { type: 'string' },
    },
  });
  if (values.out === undefined) throw new Error('--out is required');
  if (command === 'keygen') {
    const keys = generateKeyPair();
    // `wx`: an existing key is never overwritten.
    await writeFile(path.join(values.out, 'release-key.secret'), `${Buffer.from(keys.secretKey).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    await writeFile(path.join(values.out, 'release-key.pub'), `${encodeKey(keys.publicKey)}\n`, { mode: 0o644, flag: 'wx' });
    return;
  }
  if (command !== 'sign') throw new Error('usage: release-key keygen|sign ...');
  if (values.key === undefined || values.artifact === undefined || values.version === undefined) throw new Error('sign needs --key, --artifact and --version');
  const platform = releasePlatforms.find((candidate) => candidate === values.platform);
  if (platform === undefined) throw new Error(`--platform must be one of ${releasePlatforms.join(', ')}`);
  const keys = keyPairFromSecretKey(new Uint8Array(Buffer.from((await readFile(values.key, 'utf8')).trim(), 'base64')));
  const artifact = await readFile(values.artifact);
  const manifest: ReleaseManifest = {
    v: 1,
    product: 'airlock-agent',
    version: values.version,
    platform,
    artifact: { sha256: createHash('sha256').update(artifact).digest('hex'), size: artifact.length },
    downgradeAllowed: values['downgrade-allowed'],
    ...(values['min-version'] === undefined ? {} : { minVersion: values['min-version'] }),
    ...(values['max-version'] === undefined ? {} : { maxVersion: values['max-version'] }),
    issuedAt: new Date().toISOString(),
  };
  await writeFile(values.out, `${JSON.stringify(signReleaseManifest(manifest, keys.secretKey))}\n`, { mode: 0o644, flag: 'wx' });
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  await main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`release-key: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
