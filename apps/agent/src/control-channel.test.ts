import { describe, expect, it } from 'vitest';
import { heartbeatInput } from '@airlock/protocol';
import { reportedHostname } from './control-channel.ts';

describe('the host name the agent reports', () => {
  it('[integrity #18] escapes a host name with control and bidi characters, so heartbeats are not refused for it', () => {
    const hostile = `db01\u001b]0;owned\u0007\n\u202Eevil${'x'.repeat(300)}`;
    const reported = reportedHostname(hostile);
    expect(heartbeatInput.safeParse({ version: '0.1.0', hostname: reported }).success).toBe(true);
    expect([...reported].some((char) => char.charCodeAt(0) < 0x20 || char === '\u202E')).toBe(false);
    expect(reported.startsWith('db01')).toBe(true);
    expect(reportedHostname('plain-host')).toBe('plain-host');
  });
});
