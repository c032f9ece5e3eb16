import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backoffMs } from './delivery.ts';
import { alertPayload, escapeMrkdwn } from './payload.ts';
import { secretBoxFromKey } from './secret-box.ts';
import { signAlertBody, verifyAlertSignature } from './signature.ts';
import { parseWebhookUrl, refusedAddress } from './webhook.ts';

describe('alert webhook signatures', () => {
  const secret = 'whsec_test';
  const body = '{"text":"hello"}';
  const now = new Date('2026-01-01T00:00:00Z');
  const timestamp = Math.floor(now.getTime() / 1000);
  const signature = signAlertBody(secret, timestamp, body);

  it('verify the exact body and timestamp under the secret', () => {
    expect(signature).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(verifyAlertSignature({ secret, body, timestamp: String(timestamp), signature, now })).toBe(true);
  });

  it('refuse another body, secret, timestamp, a stale request or a missing header', () => {
    expect(verifyAlertSignature({ secret, body: `${body} `, timestamp: String(timestamp), signature, now })).toBe(false);
    expect(verifyAlertSignature({ secret: 'whsec_other', body, timestamp: String(timestamp), signature, now })).toBe(false);
    expect(verifyAlertSignature({ secret, body, timestamp: String(timestamp + 1), signature, now })).toBe(false);
    const later = new Date(now.getTime() + 301_000);
    expect(verifyAlertSignature({ secret, body, timestamp: String(timestamp), signature, now: later })).toBe(false);
    expect(verifyAlertSignature({ secret, body, timestamp: null, signature, now })).toBe(false);
    expect(verifyAlertSignature({ secret, body, timestamp: String(timestamp), signature: signature.slice(0, -1), now })).toBe(false);
  });
});

describe('webhook URLs', () => {
  it('accept https anywhere and http only to loopback unless allowed', () => {
    expect(parseWebhookUrl('https://hooks.example.com/services/x').origin).toBe('https://hooks.example.com');
    const loopback = { allowLoopback: true };
    expect(parseWebhookUrl('http://127.0.0.1:8080/hook', loopback).origin).toBe('http://127.0.0.1:8080');
    expect(parseWebhookUrl('http://[::1]:8080/hook', loopback).origin).toBe('http://[::1]:8080');
    expect(parseWebhookUrl('http://localhost/hook', loopback).origin).toBe('http://localhost');
    // The control plane's own host is off limits unless the operator allows it, over https too.
    for (const url of ['http://127.0.0.1:8080/hook', 'https://127.0.0.1:5432/', 'https://[::1]/', 'https://[::ffff:127.0.0.1]/', 'http://localhost/hook']) {
      expect(() => parseWebhookUrl(url)).toThrow(/loopback/);
    }
    expect(() => parseWebhookUrl('http://hooks.example.com/x')).toThrow(/must be https/);
    expect(parseWebhookUrl('http://hooks.example.com/x', { allowHttp: true }).protocol).toBe('http:');
  });

  it('refuse other schemes, credentials, fragments and link-local or metadata literals', () => {
    expect(() => parseWebhookUrl('ftp://example.com/')).toThrow(/must be https/);
    expect(() => parseWebhookUrl('file:///etc/passwd')).toThrow(/must be https/);
    expect(() => parseWebhookUrl('https://user:pw@example.com/')).toThrow(/credentials/);
    expect(() => parseWebhookUrl('https://example.com/#x')).toThrow(/fragment/);
    expect(() => parseWebhookUrl('https://169.254.169.254/latest/meta-data')).toThrow(/link-local/);
    expect(() => parseWebhookUrl('https://[fe80::1]/')).toThrow(/link-local/);
    expect(() => parseWebhookUrl('https://[::ffff:169.254.169.254]/')).toThrow(/link-local/);
    expect(() => parseWebhookUrl('https://0.0.0.0/')).toThrow(/unspecified/);
    expect(() => parseWebhookUrl('not a url')).toThrow(/valid URL/);
  });

  it('judge resolved addresses, private ranges allowed', () => {
    expect(refusedAddress('169.254.169.254')).toMatch(/link-local/);
    expect(refusedAddress('fd00:ec2::254')).not.toBeNull();
    expect(refusedAddress('100.100.100.200')).not.toBeNull();
    expect(refusedAddress('224.0.0.1')).not.toBeNull();
    expect(refusedAddress('10.1.2.3')).toBeNull();
    expect(refusedAddress('192.168.1.10')).toBeNull();
    expect(refusedAddress('127.0.0.1')).toBeNull();
  });
});

describe('secret box', () => {
  const box = secretBoxFromKey(randomBytes(32));

  it('open what it sealed, only in the same context and under the same key', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    expect(sealed).not.toContain('whsec_abc');
    expect(box.open(sealed, 'row-1')).toBe('whsec_abc');
    expect(() => box.open(sealed, 'row-2')).toThrow();
    expect(() => secretBoxFromKey(randomBytes(32)).open(sealed, 'row-1')).toThrow();
    const [version, iv, body, tag] = sealed.split('.');
    const flipped = `${version}.${iv}.${(body ?? '').slice(0, -2)}AA.${tag}`;
    expect(() => box.open(flipped, 'row-1')).toThrow();
  });
});

describe('payload', () => {
  it('is Slack-compatible, escapes mentions and links, and carries the structured alert', () => {
    const body = JSON.parse(
      alertPayload(
        {
          id: 'a1',
          tenantId: 't1',
          kind: 'scope-denied',
          severity: 'warning',
          state: 'open',
          target: '<!channel>',
          summary: 'denied <https://evil.example|click> & more',
          details: { reason: 'no grant' },
          count: 2,
          firstSeenAt: '2026-01-01T00:00:00.000Z',
          lastSeenAt: '2026-01-01T00:01:00.000Z',
        },
        { id: 'd1', test: false },
      ),
    ) as { text: string; blocks: unknown[]; airlock: { deliveryId: string; alert: { kind: string; count: number; details: unknown } } };
    expect(body.text).toBe('[warning] scope-denied: denied &lt;https://evil.example|click&gt; &amp; more');
    expect(JSON.stringify(body.blocks)).not.toContain('<!channel>');
    expect(body.airlock).toMatchObject({ deliveryId: 'd1', alert: { kind: 'scope-denied', count: 2, details: { reason: 'no grant' } } });
    expect(escapeMrkdwn('<a>&')).toBe('&lt;a&gt;&amp;');
  });
});

describe('retry backoff', () => {
  it('doubles per attempt, half of it jittered, and is capped', () => {
    const backoff = { baseMs: 1_000, maxMs: 10_000 };
    expect(backoffMs(1, backoff, () => 0)).toBe(500);
    expect(backoffMs(1, backoff, () => 1)).toBe(1_000);
    expect(backoffMs(3, backoff, () => 1)).toBe(4_000);
    expect(backoffMs(10, backoff, () => 1)).toBe(10_000);
    expect(backoffMs(50, backoff, () => 0.5)).toBe(7_500);
  });
});
