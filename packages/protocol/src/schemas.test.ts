import { describe, expect, it } from 'vitest';
import { canonicalRequest, describeSkipReason, enrollCommand, enrollInput, integrationOptions, integrationSpec, integrationSpecToSave, runReport } from './index.ts';

const report = {
  runId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
  status: 'succeeded',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:01.000Z',
  bytesIn: 10,
  bytesOut: 20,
  files: [],
  recipientFingerprints: ['A'.repeat(40)],
};

describe('protocol schemas', () => {
  it('accepts a metadata-only run report', () => {
    expect(runReport.parse(report).status).toBe('succeeded');
  });

  it('refuses any field outside the allowlist', () => {
    expect(runReport.safeParse({ ...report, content: 'row 1' }).success).toBe(false);
    const file = { sourcePath: '/x', bytesIn: 1, bytesOut: 2, plaintextHmac: 'a'.repeat(64), ciphertextSha256: 'b'.repeat(64), durationMs: 1 };
    expect(runReport.safeParse({ ...report, files: [file] }).success).toBe(true);
    expect(runReport.safeParse({ ...report, files: [{ ...file, preview: 'x' }] }).success).toBe(false);
  });

  it('validates enrollment input', () => {
    const good = { token: `aet_${'a'.repeat(43)}`, publicKey: `${'A'.repeat(43)}=`, hostname: 'h', version: '1' };
    expect(enrollInput.safeParse(good).success).toBe(true);
    expect(enrollInput.safeParse({ ...good, token: 'guess' }).success).toBe(false);
  });

  describe('integration schedule', () => {
    const spec = {
      name: 'nightly',
      agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      source: { connector: 'sftp@1', config: {} },
      destination: { connector: 'local@1', config: {} },
      recipients: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'],
    };
    const issues = (schedule: unknown) => {
      const result = integrationSpec.safeParse({ ...spec, schedule });
      return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    };

    it('is optional, and defaults to UTC and one run for missed fire times', () => {
      expect(integrationSpec.parse(spec).schedule).toBeUndefined();
      expect(integrationSpec.parse({ ...spec, schedule: { cron: ' 0 2 * * * ' } }).schedule).toEqual({ cron: '0 2 * * *', timezone: 'UTC', missed: 'run-once' });
      expect(integrationSpec.parse({ ...spec, schedule: { cron: '*/5 * * * 1-5', timezone: 'Europe/Berlin', missed: 'skip' } }).schedule?.missed).toBe('skip');
    });

    it('explains what is wrong', () => {
      expect(issues({ cron: '0 2 * *' })).toEqual(['schedule.cron: expected 5 fields: minute hour day-of-month month day-of-week']);
      expect(issues({ cron: '0 0 2 * * *' })).toEqual(['schedule.cron: expected 5 fields: minute hour day-of-month month day-of-week']);
      expect(issues({ cron: '0 2 * * *', timezone: 'Europe/Atlantis' })).toEqual(['schedule.timezone: expected an IANA time zone such as Europe/Berlin']);
      expect(issues({ cron: '0 2 * * *', timezone: '../../etc/passwd' })).toEqual(['schedule.timezone: expected an IANA time zone such as Europe/Berlin']);
      expect(issues({ cron: '0 2 * * *', missed: 'all' })).toHaveLength(1);
      expect(issues({ cron: '0 2 * * *', every: 'day' })).toHaveLength(1);
    });
  });

  it('puts every signed part on its own line', () => {
    const text = canonicalRequest({ method: 'post', pathAndQuery: '/a?b=1', bodySha256: 'c', created: 5, nonce: 'n', agentId: 'i' });
    expect(text).toBe('airlock-v1\nPOST\n/a?b=1\nc\n5\nn\ni');
  });
});

describe('integration options', () => {
  const spec = {
    name: 'nightly',
    agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
    source: { connector: 'local@1', config: {} },
    destination: { connector: 'local@1', config: {} },
    recipients: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'],
  };

  it('defaults every option to the safe choice', () => {
    const parsed = integrationSpec.parse(spec);
    expect(parsed.output).toBeUndefined();
    expect(integrationOptions.parse({})).toEqual({
      output: { armor: false, nameTemplate: '{name}.pgp', sign: false, profile: 'rfc4880' },
      selection: { stableForMs: 2000 },
      afterDelivery: { action: 'keep' },
      concurrency: 1,
    });
    expect(integrationOptions.parse({ output: { armor: true } }).output).toEqual({ armor: true, nameTemplate: '{name}.pgp', sign: false, profile: 'rfc4880' });
  });

  it('[integrity #3] saves only a name template that gives ordinary files one safe name; jobs still carry older ones', () => {
    const toSave = (nameTemplate: string) => integrationSpecToSave.safeParse({ ...spec, output: { nameTemplate } });
    const refused = toSave('../{name}.pgp');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues.map((issue) => issue.path.join('.'))).toEqual(['output.nameTemplate']);
    expect(toSave('sub/{name}').success).toBe(false);
    expect(toSave('{stem}-{date}.{ext}.pgp').success).toBe(true);
    expect(integrationSpecToSave.safeParse(spec).success).toBe(true);
    expect(integrationSpec.safeParse({ ...spec, output: { nameTemplate: '../{name}.pgp' } }).success).toBe(true);
  });

  it('accepts known placeholders only', () => {
    const template = (nameTemplate: string) => integrationSpec.safeParse({ ...spec, output: { nameTemplate } }).success;
    expect(template('{stem}-{date}-{runId}.{ext}.asc')).toBe(true);
    expect(template('{name}{unknown}')).toBe(false);
    expect(template('{name')).toBe(false);
    expect(template('name}')).toBe(false);
  });

  it('bounds concurrency and requires an archive directory exactly with archive', () => {
    expect(integrationSpec.safeParse({ ...spec, concurrency: 8 }).success).toBe(true);
    expect(integrationSpec.safeParse({ ...spec, concurrency: 9 }).success).toBe(false);
    expect(integrationSpec.safeParse({ ...spec, concurrency: 0 }).success).toBe(false);
    const after = (afterDelivery: unknown) => integrationSpec.safeParse({ ...spec, afterDelivery }).success;
    expect(after({ action: 'archive', archiveDirectory: '/srv/done' })).toBe(true);
    expect(after({ action: 'archive' })).toBe(false);
    expect(after({ action: 'delete', archiveDirectory: '/srv/done' })).toBe(false);
    expect(after({ action: 'archive', archiveDirectory: '/srv/../etc' })).toBe(false);
    expect(after({ action: 'archive', archiveDirectory: 'relative' })).toBe(false);
    expect(after({ action: 'shred' })).toBe(false);
  });

  it('reports skipped and deferred counts, zero by default', () => {
    expect(runReport.parse(report)).toMatchObject({ skipped: 0, deferred: 0 });
    expect(runReport.safeParse({ ...report, skipped: -1 }).success).toBe(false);
  });

  it('[integrity #14] carries skipped names with a count, bounded, and only with a known reason', () => {
    const entry = { directory: '/srv/in', name: 'M%FCller.csv', reason: 'name-not-utf8' };
    expect(runReport.parse({ ...report, skippedNames: { count: 250, entries: [entry] } }).skippedNames).toEqual({ count: 250, entries: [entry] });
    expect(runReport.parse(report).skippedNames).toBeUndefined();
    const parses = (skippedNames: unknown) => runReport.safeParse({ ...report, skippedNames }).success;
    expect(parses({ count: 101, entries: Array.from({ length: 101 }, () => entry) })).toBe(false);
    expect(parses({ count: 1, entries: [entry, entry] })).toBe(false);
    expect(parses({ count: 1, entries: [{ ...entry, reason: 'other' }] })).toBe(false);
    expect(parses({ count: 1, entries: [{ ...entry, name: 'line%0Abreak.csv', reason: 'name-unsafe' }] })).toBe(true);
    // Every reason has its words; a stored one this version does not know is shown as it is.
    expect(describeSkipReason('name-unsafe')).toMatch(/control character/);
    expect(describeSkipReason('toString')).toBe('toString');
    expect(parses({ count: 1, entries: [{ ...entry, content: 'x' }] })).toBe(false);
  });
});

describe('enroll command', () => {
  it('names the installed binary and its data directory, carries the control-plane key pin, and quotes what a shell would split', () => {
    const pin = `ed25519:${'A'.repeat(43)}`;
    const command = enrollCommand({ url: 'https://airlock.example.com', token: 'aet_abc', controlPlaneKey: pin });
    expect(command.argv).toEqual(['airlock-agent', 'enroll', '--url', 'https://airlock.example.com', '--token', 'aet_abc', '--control-plane-key', pin, '--dir', '/var/lib/airlock']);
    expect(command.text).toBe(`airlock-agent enroll --url https://airlock.example.com --token aet_abc --control-plane-key ${pin} --dir /var/lib/airlock`);
    expect(enrollCommand({ url: "https://x/a b'c", token: 't', controlPlaneKey: pin }).text).toContain(`'https://x/a b'\\''c'`);
    expect(enrollCommand({ url: 'https://x', token: '$(rm -rf /)', controlPlaneKey: pin }).text).toContain(`'$(rm -rf /)'`);
  });
});
