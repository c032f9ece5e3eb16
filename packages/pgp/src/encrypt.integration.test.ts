import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DemoKey,
  type EncryptOptions,
  encryptStream,
  generateDemoKey,
  generateSigningKey,
  loadRecipients,
  readSigningKey,
  type RecipientKey,
} from './index.ts';
import { ArmorEncoder } from './armor.ts';
import { Seipdv1Encryptor } from './seipd.ts';

interface GpgResult {
  code: number | null;
  stdoutSha256: string;
  stderr: string;
}

/** Runs gpg with an argv array (no shell), hashing stdout as it streams so plaintext never touches disk. */
function gpg(home: string, args: string[], stdin?: string): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', ['--homedir', home, '--batch', '--no-tty', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const hash = createHash('sha256');
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => hash.update(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdoutSha256: hash.digest('hex'), stderr }));
    // gpg may exit before reading all of stdin; its exit code tells what happened.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

function killAgent(home: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('gpgconf', ['--homedir', home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}

describe('GnuPG decrypts what encryptStream writes', () => {
  let dir: string;
  let home: string;
  let demo: DemoKey;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-pgp-'));
    home = await mkdtemp(path.join(tmpdir(), 'airlock-gnupg-'));
    await chmod(home, 0o700);
    demo = await generateDemoKey('Partner', 'partner@example.com');
    const imported = await gpg(home, ['--import'], demo.armoredSecretKey);
    expect(imported.code, imported.stderr).toBe(0);
  });

  afterAll(async () => {
    await killAgent(home);
    await rm(home, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['binary', false],
    ['armored', true],
  ])('5 MiB, %s', async (_label, armor) => {
    const recipients = await loadRecipients([demo.armoredPublicKey]);
    const plaintext = randomBytes(5 * 1024 * 1024);
    const file = path.join(dir, armor ? 'out.asc' : 'out.gpg');
    const chunks = Array.from({ length: plaintext.length / 65_536 }, (_, i) => plaintext.subarray(i * 65_536, (i + 1) * 65_536));
    await pipeline(await encryptStream(Readable.from(chunks), recipients, { armor, filename: 'data.bin' }), createWriteStream(file));

    const result = await gpg(home, ['--yes', '--pinentry-mode', 'loopback', '--decrypt', file]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdoutSha256).toBe(createHash('sha256').update(plaintext).digest('hex'));
    // GnuPG 2.2 warns when a message lacks integrity protection; SEIPDv1 carries an MDC.
    expect(result.stderr).not.toMatch(/not integrity protected/);
  });
});

describe('GnuPG and several recipients, and the agent\'s signature', () => {
  const dirs: string[] = [];

  /** A fresh GNUPGHOME holding only the given keys. */
  async function homeWith(...armoredKeys: string[]): Promise<string> {
    const home = await mkdtemp(path.join(tmpdir(), 'airlock-gnupg-'));
    dirs.push(home);
    await chmod(home, 0o700);
    for (const armored of armoredKeys) {
      const imported = await gpg(home, ['--import'], armored);
      expect(imported.code, imported.stderr).toBe(0);
    }
    return home;
  }

  async function encryptToFile(plaintext: Buffer, recipients: RecipientKey[], options: EncryptOptions = {}): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'airlock-pgp-'));
    dirs.push(dir);
    const file = path.join(dir, 'out.pgp');
    await pipeline(await encryptStream(Readable.from([plaintext]), recipients, options), createWriteStream(file));
    return file;
  }

  afterAll(async () => {
    for (const dir of dirs) {
      await killAgent(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a message to two recipients decrypts with either secret key alone', async () => {
    const a = await generateDemoKey('A', 'a@example.com');
    const b = await generateDemoKey('B', 'b@example.com');
    const plaintext = randomBytes(300_000);
    const file = await encryptToFile(plaintext, await loadRecipients([a.armoredPublicKey, b.armoredPublicKey]));
    for (const key of [a, b]) {
      const result = await gpg(await homeWith(key.armoredSecretKey), ['--yes', '--pinentry-mode', 'loopback', '--decrypt', file]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdoutSha256).toBe(createHash('sha256').update(plaintext).digest('hex'));
    }
    // A third key opens nothing: the test would notice a message readable by anyone.
    const stranger = await generateDemoKey('C', 'c@example.com');
    const refused = await gpg(await homeWith(stranger.armoredSecretKey), ['--yes', '--pinentry-mode', 'loopback', '--decrypt', file]);
    expect(refused.code).not.toBe(0);
  });

  it('verifies the agent\'s signature: GOODSIG and VALIDSIG for its key', async () => {
    const recipient = await generateDemoKey('Partner', 'partner@example.com');
    const signer = await readSigningKey(await generateSigningKey('Airlock agent'));
    const plaintext = randomBytes(200_000);
    const file = await encryptToFile(plaintext, await loadRecipients([recipient.armoredPublicKey]), { signingKey: signer });
    const home = await homeWith(recipient.armoredSecretKey, signer.armoredPublicKey);
    const result = await gpg(home, ['--yes', '--pinentry-mode', 'loopback', '--status-fd', '2', '--decrypt', file]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdoutSha256).toBe(createHash('sha256').update(plaintext).digest('hex'));
    expect(result.stderr).toMatch(new RegExp(`\\[GNUPG:\\] GOODSIG ${signer.fingerprint.slice(-16)} `));
    expect(result.stderr).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG ${signer.fingerprint} `));
    // Without the agent's public key gpg cannot vouch for the signature.
    const blind = await gpg(await homeWith(recipient.armoredSecretKey), ['--yes', '--pinentry-mode', 'loopback', '--status-fd', '2', '--decrypt', file]);
    expect(blind.stderr).toMatch(/\[GNUPG:\] NO_PUBKEY/);
    expect(blind.stderr).not.toMatch(/GOODSIG/);
  });
});

describe('GnuPG reads every frame layout, and its MDC check catches tampering', () => {
  let dir: string;
  let home: string;
  let demo: DemoKey;
  const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
  const decryptArgs = ['--yes', '--pinentry-mode', 'loopback', '--status-fd', '2', '--decrypt'];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'airlock-pgp-'));
    home = await mkdtemp(path.join(tmpdir(), 'airlock-gnupg-'));
    await chmod(home, 0o700);
    demo = await generateDemoKey('Partner', 'partner@example.com');
    const imported = await gpg(home, ['--import'], demo.armoredSecretKey);
    expect(imported.code, imported.stderr).toBe(0);
  });

  afterAll(async () => {
    await killAgent(home);
    await rm(home, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  /** A message in 512-octet frames, so a few hundred octets cross several frame edges. */
  async function sealSmallFrames(plaintext: Buffer, armor: boolean): Promise<Buffer> {
    const [recipient] = await loadRecipients([demo.armoredPublicKey]);
    if (recipient === undefined) throw new Error('no recipient');
    const sessionKey = randomBytes(32);
    const sessionKeyPackets = await openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: recipient.key, format: 'binary' });
    const encryptor = new Seipdv1Encryptor({ sessionKeyPackets, sessionKey, algorithm: 'aes256', filename: 'f.bin', date: new Date(), partialBytes: 512 });
    const chunks = Array.from({ length: Math.ceil(plaintext.length / 100) }, (_, i) => plaintext.subarray(i * 100, (i + 1) * 100));
    const output: Buffer[] = [];
    const sealed = Readable.from(chunks).pipe(encryptor);
    for await (const chunk of armor ? sealed.pipe(new ArmorEncoder()) : sealed) output.push(Buffer.from(chunk));
    return Buffer.concat(output);
  }

  it('decrypts messages from 0 octets to past several frames, binary and armored', async () => {
    // Literal frame edges fall near 512k - 11, SEIPD frame edges near 512k - 55 - k (see seipd.test.ts).
    const sizes = [0, 1, 191, 192, 455, 456, 457, 500, 501, 502, 966, 967, 1013, 2500, 2501, 3000];
    const plaintext = randomBytes(Math.max(...sizes));
    for (const size of sizes) {
      for (const armor of size === 0 || size === 2501 ? [false, true] : [false]) {
        const data = plaintext.subarray(0, size);
        const file = path.join(dir, `small-${size}${armor ? '.asc' : '.gpg'}`);
        await writeFile(file, await sealSmallFrames(data, armor));
        const result = await gpg(home, [...decryptArgs, file]);
        expect(result.code, `size ${size}: ${result.stderr}`).toBe(0);
        expect(result.stdoutSha256, `size ${size}`).toBe(sha256(data));
        expect(result.stderr).toMatch(/\[GNUPG:\] GOODMDC/);
      }
    }
  });

  it('refuses a message with one changed octet, in the data or in the MDC', async () => {
    const file = path.join(dir, 'tampered.gpg');
    const original = await sealSmallFrames(randomBytes(2000), false);
    await writeFile(file, original);
    expect((await gpg(home, [...decryptArgs, file])).code).toBe(0);
    // The session key packet is about 100 octets; past it, frame length octets sit every 513 octets
    // from the SEIPD header, which these offsets avoid.
    for (const at of [original.length - 1200, original.length - 3]) {
      const tampered = Buffer.from(original);
      tampered[at] = (tampered[at] ?? 0) ^ 0x20;
      await writeFile(file, tampered);
      const result = await gpg(home, [...decryptArgs, file]);
      expect(result.code, `octet ${at}`).not.toBe(0);
      expect(result.stderr, `octet ${at}`).toMatch(/BADMDC|DECRYPTION_FAILED/);
      expect(result.stderr).not.toMatch(/\[GNUPG:\] GOODMDC/);
    }
  });

  it('every option through encryptStream: 1 or 3 recipients, armor on or off, signed or not', async () => {
    const others = [await generateDemoKey('B', 'b@example.com'), await generateDemoKey('C', 'c@example.com')];
    const signer = await readSigningKey(await generateSigningKey('Airlock agent'));
    const signerImported = await gpg(home, ['--import'], signer.armoredPublicKey);
    expect(signerImported.code, signerImported.stderr).toBe(0);
    const decryptionKey = await openpgp.readPrivateKey({ armoredKey: demo.armoredSecretKey });
    // Past four default (256 KiB) frames, fed in chunks that do not divide one; the small-frame
    // test above crosses edges at many more offsets.
    const plaintext = randomBytes((1 << 20) + 999);
    const chunks = Array.from({ length: Math.ceil(plaintext.length / 65_537) }, (_, i) => plaintext.subarray(i * 65_537, (i + 1) * 65_537));
    for (const many of [false, true]) {
      const recipients = await loadRecipients([demo.armoredPublicKey, ...(many ? others.map((key) => key.armoredPublicKey) : [])]);
      for (const armor of [false, true]) {
        for (const sign of [false, true]) {
          const label = `${recipients.length} recipient(s), armor ${String(armor)}, signed ${String(sign)}`;
          const file = path.join(dir, 'matrix.pgp');
          const options: EncryptOptions = { armor, filename: 'data.bin', ...(sign ? { signingKey: signer } : {}) };
          await pipeline(await encryptStream(Readable.from(chunks), recipients, options), createWriteStream(file));
          const result = await gpg(home, [...decryptArgs, file]);
          expect(result.code, `${label}: ${result.stderr}`).toBe(0);
          expect(result.stdoutSha256, label).toBe(sha256(plaintext));
          if (sign) expect(result.stderr, label).toMatch(new RegExp(`\\[GNUPG:\\] VALIDSIG ${signer.fingerprint} `));
          const text = await readFile(file);
          const message = armor ? await openpgp.readMessage({ armoredMessage: text.toString('utf8') }) : await openpgp.readMessage({ binaryMessage: text });
          const opened = await openpgp.decrypt({ message, decryptionKeys: decryptionKey, format: 'binary' });
          expect(sha256(opened.data), label).toBe(sha256(plaintext));
          expect(opened.filename, label).toBe('data.bin');
        }
      }
    }
  });
});
