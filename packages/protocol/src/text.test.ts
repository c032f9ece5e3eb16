import { describe, expect, it } from 'vitest';
import { createAlertDestinationInput, createApiKeyInput, enrollInput, heartbeatInput, integrationSpec, listAuditInput, securityEventInput } from './index.ts';
import { escapeUnprintable, truncateText } from './text.ts';

const enroll = { token: `aet_${'a'.repeat(43)}`, publicKey: `${'A'.repeat(43)}=`, hostname: 'h', version: '1' };
const event = { id: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d', kind: 'policy-violation', at: '2026-01-01T00:00:00.000Z', reason: 'outside policy' };

/** What a hostile agent would put in a hostname or reason to forge output on an admin's terminal. */
const forgeries = {
  'an escape sequence that retitles the terminal': 'host\u001b]0;pwned\u0007',
  'a newline that forges a row': 'host\n6f1f1a52-0000-0000-0000-000000000000  trusted-host  online',
  'a carriage return': 'host\rtrusted',
  'a C1 control (8-bit CSI)': 'host\u009b2J',
  'a right-to-left override': 'host\u202egnp.exe',
  'a bidi isolate': 'host\u2066x\u2069',
  'a line separator': 'host\u2028x',
  DEL: 'host\u007f',
};

describe('display text', () => {
  for (const [label, hostile] of Object.entries(forgeries)) {
    it(`[integrity #18] hostnames and security-event reasons refuse ${label}`, () => {
      expect(enrollInput.safeParse({ ...enroll, hostname: hostile }).success).toBe(false);
      expect(heartbeatInput.safeParse({ version: '1', hostname: hostile }).success).toBe(false);
      expect(securityEventInput.safeParse({ ...event, reason: hostile }).success).toBe(false);
    });
  }

  it('[integrity #18] accepts ordinary international names', () => {
    expect(enrollInput.safeParse({ ...enroll, hostname: 'büro-server.example' }).success).toBe(true);
    expect(securityEventInput.safeParse({ ...event, reason: 'Richtlinie verletzt: 文件 😀 (tab-free)' }).success).toBe(true);
  });

  it('[integrity #18] escapes every unprintable character and leaves the rest alone', () => {
    expect(escapeUnprintable('a\u001b]0;x\u0007b\nc\u202ed\u0000e\ud800f')).toBe('a\\x1b]0;x\\x07b\\x0ac\\u202ed\\x00e\\ud800f');
    expect(escapeUnprintable('büro × ≥ 😀')).toBe('büro × ≥ 😀');
  });
});

describe('storable text', () => {
  it('[integrity #19] free-text inputs refuse NUL and unpaired surrogates', () => {
    for (const bad of ['a\u0000b', 'a\ud800b', 'a\udc00b']) {
      expect(listAuditInput.safeParse({ target: bad }).success).toBe(false);
      expect(listAuditInput.safeParse({ action: bad }).success).toBe(false);
      expect(createApiKeyInput.safeParse({ name: bad, role: 'auditor', expiresInDays: 1 }).success).toBe(false);
      expect(createAlertDestinationInput.safeParse({ name: bad, url: 'https://hooks.example/x' }).success).toBe(false);
    }
    expect(listAuditInput.safeParse({ target: 'a😀b' }).success).toBe(true);
  });

  it('[integrity #19] integration connector settings refuse NUL and unpaired surrogates anywhere, keys included', () => {
    const spec = {
      name: 'nightly',
      agentId: '6f1f1a52-7d1c-4a8e-9b7e-0a4c7c1f2b3d',
      source: { connector: 'sftp@1', config: { host: 'files.example', paths: ['/out/😀.csv'] } },
      destination: { connector: 'local@1', config: {} },
      recipients: ['-----BEGIN PGP PUBLIC KEY BLOCK-----'],
    };
    expect(integrationSpec.safeParse(spec).success).toBe(true);
    for (const config of [{ host: 'a\u0000b' }, { paths: [{ deep: ['x\ud800'] }] }, { ['k\u0000']: 'v' }]) {
      expect(integrationSpec.safeParse({ ...spec, source: { connector: 'sftp@1', config } }).success).toBe(false);
      expect(integrationSpec.safeParse({ ...spec, destination: { connector: 'local@1', config } }).success).toBe(false);
    }
  });

  it('[integrity #19] truncates by code point, never leaving half a surrogate pair', () => {
    expect(truncateText('ab😀c', 3)).toBe('ab😀');
    expect(truncateText('ab😀c', 2)).toBe('ab');
    expect(truncateText('😀'.repeat(600), 500)).toBe('😀'.repeat(500));
    expect(securityEventInput.safeParse({ ...event, reason: truncateText('😀'.repeat(600), 500) }).success).toBe(true);
    expect(truncateText('short', 500)).toBe('short');
  });
});
