import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectorContext } from '@airlock/connector-api';
import { PolicyViolationError, UserError } from '@airlock/errors';
import { type ApprovedScript, approvedScript, buildArgv, redactTail, scriptSource } from './index.ts';

let work: string;
const warnings: Array<Record<string, unknown>> = [];
const ctx: ConnectorContext = {
  signal: new AbortController().signal,
  logger: { debug: () => undefined, info: () => undefined, warn: (meta) => warnings.push(meta), error: () => undefined },
  secret: async () => ({}),
};

async function script(name: string, body: string, overrides: Partial<ApprovedScript> = {}): Promise<ApprovedScript> {
  const file = path.join(work, `${name}.sh`);
  const text = `#!/bin/sh\n${body}\n`;
  await writeFile(file, text);
  await chmod(file, 0o755);
  return approvedScript.parse({
    name,
    command: file,
    sha256: createHash('sha256').update(text).digest('hex'),
    cwd: work,
    ...overrides,
  });
}

async function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

async function run(approved: ApprovedScript[], config: Record<string, unknown>): Promise<string> {
  const session = await scriptSource.bind(config).connect({ ...ctx, policy: approved });
  const [file] = await session.list();
  if (!file) throw new Error('no output file listed');
  return collect(await session.open(file));
}

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'airlock-script-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('approved export scripts', () => {
  it('streams stdout of the approved argv, in the approved directory, with a scrubbed environment', async () => {
    process.env['AIRLOCK_CANARY_ENV'] = 'must-not-leak';
    const approved = await script('env', 'pwd; env | sort; printf "%s|" "$@"', {
      args: ['--since', '{since}', 'fixed'],
      env: { EXPORT_MODE: 'full' },
      params: { since: { pattern: '\\d{4}-\\d{2}-\\d{2}', maxLength: 10 } },
    });
    const output = await run([approved], { name: 'env', params: { since: '2026-01-31' } });
    const lines = output.split('\n');
    expect(lines[0]).toBe(work);
    expect(output).toContain('EXPORT_MODE=full');
    expect(output).toContain('PATH=/usr/local/bin:/usr/bin:/bin');
    expect(output).not.toContain('must-not-leak');
    expect(output).not.toMatch(/^HOME=/m);
    expect(output.endsWith('--since|2026-01-31|fixed|')).toBe(true);
    delete process.env['AIRLOCK_CANARY_ENV'];
  });

  it('refuses a script whose file changed, before running it', async () => {
    const marker = path.join(work, 'ran-changed');
    const approved = await script('changed', `touch ${marker}; echo data`);
    await writeFile(approved.command, `#!/bin/sh\ntouch ${marker}\necho tampered\n`);
    await expect(run([approved], { name: 'changed' })).rejects.toBeInstanceOf(PolicyViolationError);
    expect(await readdir(work)).not.toContain('ran-changed');
  });

  it('refuses a script the local policy does not approve', async () => {
    const approved = await script('known', 'echo ok');
    await expect(scriptSource.bind({ name: 'other' }).connect({ ...ctx, policy: [approved] })).rejects.toBeInstanceOf(PolicyViolationError);
  });

  it('fails on a non-zero exit even after writing output', async () => {
    const approved = await script('fails', 'echo partial; echo "password=hunter2 token ABCDEFGHIJKLMNOPQRSTUV" >&2; exit 3');
    await expect(run([approved], { name: 'fails' })).rejects.toThrow(/exited with 3/);
    const logged = JSON.stringify(warnings.at(-1));
    expect(logged).toContain('[redacted]');
    expect(logged).not.toContain('hunter2');
    expect(logged).not.toContain('ABCDEFGHIJKLMNOPQRSTUV');
  });

  it('kills a script that runs past its timeout', async () => {
    const approved = await script('slow', 'echo start; sleep 30; echo never', { timeoutMs: 300 });
    const started = Date.now();
    await expect(run([approved], { name: 'slow' })).rejects.toThrow(/timed out/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('fails a script that writes more than its output cap', async () => {
    const approved = await script('chatty', 'head -c 100000 /dev/zero', { maxOutputBytes: 1000 });
    await expect(run([approved], { name: 'chatty' })).rejects.toThrow(/more than 1000 bytes/);
  });

  it('validates parameters against the declared schema without echoing values', async () => {
    const approved = await script('params', 'echo ok', { args: ['{day}'], params: { day: { pattern: '[0-9]{2}', maxLength: 2 } } });
    expect(() => buildArgv(approved, {})).toThrow(/needs parameter day/);
    expect(() => buildArgv(approved, { day: '01', extra: 'x' })).toThrow(/no parameter "extra"/);
    expect(() => buildArgv(approved, { day: 'secret-value' })).toThrow(UserError);
    expect(() => buildArgv(approved, { day: 'secret-value' })).not.toThrow(/secret-value/);
    expect(buildArgv(approved, { day: '07' })).toEqual(['07']);
  });

  it('runs nothing extra for shell metacharacters in parameters', async () => {
    const marker = path.join(work, 'pwned');
    const corpus = [
      `; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, `| touch ${marker}`, `&& touch ${marker}`,
      `|| touch ${marker}`, `\ntouch ${marker}`, `> ${marker}`, `< /etc/passwd`, `'; touch ${marker}; '`,
      `"; touch ${marker}; "`, '$HOME', '${PATH}', '*', '~', '%PATH%', `$((1+1))`, `!!`, `#`, `a b  c`,
      '-rf', '--help', `\\; touch ${marker}`, `$(< /etc/passwd)`, `{a,b}`,
    ];
    const approved = await script('echo', 'printf "%s" "$1"', { args: ['{value}'], params: { value: { pattern: '[\\s\\S]*', maxLength: 200 } } });
    for (const value of corpus) {
      expect(await run([approved], { name: 'echo', params: { value } })).toBe(value);
    }
    expect(await readdir(work)).not.toContain('pwned');
  });

  it('redacts secrets from the stderr tail', () => {
    expect(redactTail('connect failed: password=abc123 for user x')).toBe('connect failed: password=[redacted] for user x');
    expect(redactTail('key: 0123456789abcdef0123')).not.toContain('0123456789abcdef0123');
  });
});
