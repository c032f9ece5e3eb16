import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseWebhookUrl, refusedAddress, sendWebhook } from './webhook.ts';

describe('webhook addresses that embed an IPv4 address', () => {
  it('[integrity #23] refuse IPv4-compatible IPv6 (::/96), whatever it embeds', () => {
    for (const address of ['::169.254.169.254', '::a9fe:a9fe', '::10.1.2.3', '::8.8.8.8', '::7f00:1']) {
      expect(refusedAddress(address), address).not.toBeNull();
    }
    expect(() => parseWebhookUrl('https://[::8.8.8.8]/hook')).toThrow(/IPv4-compatible/);
    // ::1 is loopback, not an embedded 0.0.0.1, and :: stays refused as unspecified.
    expect(refusedAddress('::1')).toBeNull();
    expect(refusedAddress('::')).not.toBeNull();
  });

  it('[integrity #23] judge NAT64 (64:ff9b::/96) by the IPv4 address it embeds, and never as loopback', () => {
    for (const address of ['64:ff9b::169.254.169.254', '64:ff9b::a9fe:a9fe', '64:ff9b::100.100.100.200', '64:ff9b::e000:1', '64:ff9b::0.0.0.0', '64:ff9b::127.0.0.1']) {
      expect(refusedAddress(address), address).not.toBeNull();
    }
    expect(() => parseWebhookUrl('https://[64:ff9b::169.254.169.254]/latest/meta-data')).toThrow(/link-local/);
    expect(() => parseWebhookUrl('https://[64:ff9b::7f00:1]/', { allowLoopback: true })).toThrow(/NAT64/);
    // What DNS64 answers for an ordinary public receiver on an IPv6-only network stays usable.
    expect(refusedAddress('64:ff9b::8.8.8.8')).toBeNull();
    expect(refusedAddress('64:ff9b::808:808')).toBeNull();
  });

  it('[integrity #23] a refused target is reported as a policy refusal, without its address', async () => {
    const result = await sendWebhook({ url: 'https://[64:ff9b::a9fe:a9fe]/latest', secret: 'whsec_x', deliveryId: randomUUID() }, '{}', { timeoutMs: 1_000 });
    expect(result).toEqual({ ok: false, status: null, error: 'refused by policy', durationMs: expect.any(Number) });
  });
});
