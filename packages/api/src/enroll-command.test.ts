import { describe, expect, it } from 'vitest';
import { enrollCommand, shellQuote } from './enroll-command.ts';

describe('enrollCommand', () => {
  it('spells airlock-agent enroll with the URL and token, as argv and as one shell line', () => {
    const command = enrollCommand({ controlPlaneUrl: 'https://airlock.example.com', token: 'aet_abc-DEF_123' });
    expect(command.argv).toEqual(['airlock-agent', 'enroll', '--url', 'https://airlock.example.com', '--token', 'aet_abc-DEF_123']);
    expect(command.text).toBe('airlock-agent enroll --url https://airlock.example.com --token aet_abc-DEF_123');
  });

  it('adds the control-plane key to pin when given', () => {
    const command = enrollCommand({ controlPlaneUrl: 'https://a.example', token: 'aet_x', controlPlaneKey: `ed25519:${'A'.repeat(43)}` });
    expect(command.argv.slice(-2)).toEqual(['--control-plane-key', `ed25519:${'A'.repeat(43)}`]);
    expect(command.text).toMatch(/ --control-plane-key ed25519:A{43}$/);
  });

  it('quotes what a shell would split or expand', () => {
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'"'"'s'`);
    expect(shellQuote('$(rm -rf /)')).toBe("'$(rm -rf /)'");
  });
});
