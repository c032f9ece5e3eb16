/**
 * Sends one signed alert to a webhook, with the network rules that keep a tenant-supplied URL from
 * reaching what it should not:
 * - loopback (the control plane's own host) only when `allowLoopback` is configured: a tenant's
 *   URL must not reach the services beside the control plane; with it, http to loopback is allowed;
 * - https only, except to loopback as above or when `allowHttp` is configured;
 * - no credentials in the URL, no redirects followed (a 3xx is a failure), a whole-request timeout
 *   and a cap on how much of the response is read; the response body is never shown back, so a
 *   destination cannot be used to read what answers at its address;
 * - every address the host resolves to is checked, and the connection goes to the checked address
 *   (no second lookup a rebinding DNS server could answer differently). Refused: link-local
 *   (169.254/16 holds the cloud metadata endpoints, fe80::/10), cloud metadata addresses, the
 *   unspecified, multicast and reserved ranges. Private ranges (10/8, 192.168/16, fc00::/7) stay
 *   allowed because on-premises receivers (chat servers, SIEM collectors) live there. An IPv6 address
 *   that embeds an IPv4 one is judged as that IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96), and the
 *   deprecated IPv4-compatible form (::/96) is refused outright;
 * - a failure is reported as its class only ("could not connect", "timed out", "refused by policy",
 *   "HTTP <status>"), never the system's error text, so a tenant cannot map the network behind the
 *   control plane from what a test or a delivery says.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { UserError } from '@airlock/errors';
import { DELIVERY_HEADER, SIGNATURE_HEADER, signAlertBody, TIMESTAMP_HEADER } from './signature.ts';

export interface WebhookOptions {
  /** Allow http:// to non-loopback hosts. Default false; for closed networks only. */
  allowHttp?: boolean;
  /** Allow loopback addresses (and http to them). Default false; for single-host setups and tests. */
  allowLoopback?: boolean;
  /** Whole request, connect to last byte, in ms. Default 10_000. */
  timeoutMs?: number;
  /** Most response bytes read before the connection is dropped (the body is never used). Default 4_096. */
  maxResponseBytes?: number;
}

const refused = new net.BlockList();
refused.addSubnet('0.0.0.0', 8, 'ipv4');
refused.addSubnet('169.254.0.0', 16, 'ipv4');
refused.addSubnet('100.100.100.200', 32, 'ipv4'); // Alibaba Cloud metadata
refused.addSubnet('224.0.0.0', 4, 'ipv4');
refused.addSubnet('240.0.0.0', 4, 'ipv4');
refused.addSubnet('::', 128, 'ipv6');
refused.addSubnet('fe80::', 10, 'ipv6');
refused.addSubnet('ff00::', 8, 'ipv6');
refused.addSubnet('fd00:ec2::254', 128, 'ipv6'); // AWS metadata over IPv6

/** NAT64's well-known prefix: the last 32 bits are the IPv4 address a translator connects to. */
const nat64 = new net.BlockList();
nat64.addSubnet('64:ff9b::', 96, 'ipv6');
/** IPv4-compatible IPv6 (RFC 4291, deprecated), which also holds :: and ::1. */
const ipv4Compatible = new net.BlockList();
ipv4Compatible.addSubnet('::', 96, 'ipv6');

const loopback = new net.BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

function family(address: string): 'ipv4' | 'ipv6' {
  return net.isIPv4(address) ? 'ipv4' : 'ipv6';
}

/** IPv4-mapped IPv6 (::ffff:169.254.169.254) is judged as the IPv4 address it is. */
function unmapped(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** The IPv4 address in the last 32 bits of an IPv6 address. */
function lastIPv4(address: string): string {
  // SocketAddress normalizes every spelling (a trailing dotted quad, `::`) to hextets.
  const parsed = new net.SocketAddress({ address, family: 'ipv6' }).address;
  const [head = '', tail = ''] = parsed.split('::');
  const groups = [...(head ? head.split(':') : [])];
  const rest = tail ? tail.split(':') : [];
  while (groups.length + rest.length < 8) groups.push('0');
  const all = [...groups, ...rest].map((group) => Number.parseInt(group, 16));
  const high = all[6] ?? 0;
  const low = all[7] ?? 0;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

export function isLoopback(address: string): boolean {
  const plain = unmapped(address);
  return loopback.check(plain, family(plain));
}

/** Why a resolved address may not be sent to, or null when it may. */
export function refusedAddress(address: string): string | null {
  const plain = unmapped(address);
  if (!net.isIP(plain)) return `not an IP address: ${address}`;
  if (refused.check(plain, family(plain))) return `address ${plain} is link-local, metadata, unspecified, multicast or reserved`;
  if (family(plain) === 'ipv6' && plain !== '::1' && ipv4Compatible.check(plain, 'ipv6')) return `address ${plain} is IPv4-compatible IPv6, which is deprecated`;
  if (family(plain) === 'ipv6' && nat64.check(plain, 'ipv6')) {
    const embedded = lastIPv4(plain);
    // A translator's "loopback" is not this host's: never the allowed loopback of single-host setups.
    if (loopback.check(embedded, 'ipv4')) return `address ${plain} is NAT64 of a loopback address`;
    const reason = refusedAddress(embedded);
    return reason === null ? null : `NAT64 address ${plain}: ${reason}`;
  }
  return null;
}

function hostOf(url: URL): string {
  // URL keeps the brackets of an IPv6 literal.
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/**
 * Checks a webhook URL's form when it is saved: scheme, no credentials, a host. Addresses are
 * checked again at every send, since DNS can change in between.
 */
export function parseWebhookUrl(text: string, options: Pick<WebhookOptions, 'allowHttp' | 'allowLoopback'> = {}): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new UserError('url: not a valid URL', { cause: error });
  }
  if (url.username !== '' || url.password !== '') throw new UserError('url: credentials in the URL are not allowed');
  if (url.hash !== '') throw new UserError('url: a fragment is not allowed');
  const host = hostOf(url);
  const local = host === 'localhost' || (net.isIP(host) !== 0 && isLoopback(host));
  if (local && !options.allowLoopback) throw new UserError('url: loopback addresses are refused (AIRLOCK_ALERT_ALLOW_LOOPBACK)');
  if (url.protocol === 'http:') {
    if (!local && !options.allowHttp) throw new UserError('url: must be https (http only to loopback)');
  } else if (url.protocol !== 'https:') {
    throw new UserError('url: must be https');
  }
  if (net.isIP(host) !== 0) {
    const reason = refusedAddress(host);
    if (reason) throw new UserError(`url: ${reason}`);
  }
  return url;
}

/** The URL's scheme, host and port: what listings and audit events show of it. */
export function originOf(url: URL): string {
  return url.origin;
}

/** What a failed send is reported as: its class, never a system error's text. */
export type WebhookFailure = 'could not connect' | 'timed out' | 'refused by policy' | `HTTP ${number}` | `HTTP ${number}: redirects are not followed`;

export type SendResult = { ok: true; status: number; durationMs: number } | { ok: false; status: number | null; error: string; durationMs: number };

const REFUSED_ADDRESS = 'EREFUSEDADDRESS';

/** Every failure text goes through here, so only a class can reach a result. */
function failure(kind: WebhookFailure): WebhookFailure {
  return kind;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/**
 * A `lookup` for http.request that resolves every address, refuses the request when any of them is
 * refused (loopback too, unless allowed; for plain http, anything but loopback), and connects to the first one.
 */
function guardedLookup(requireLoopback: boolean, allowLoopback: boolean) {
  return (hostname: string, lookupOptions: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { all: true, verbatim: true }, (error, addresses) => {
      if (error) return callback(error, '');
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), '');
      for (const { address } of addresses) {
        const reason =
          refusedAddress(address) ??
          (!allowLoopback && isLoopback(address) ? `address ${address} is loopback` : null) ??
          (requireLoopback && !isLoopback(address) ? `address ${address} is not loopback (http)` : null);
        if (reason) return callback(Object.assign(new Error(`refused: ${reason}`), { code: REFUSED_ADDRESS }), '');
      }
      if (lookupOptions.all) return callback(null, [first]);
      return callback(null, first.address, first.family);
    });
  };
}

/** POSTs `body` signed with `secret`. Never throws for network or HTTP failures: they are results. */
export async function sendWebhook(
  target: { url: string; secret: string; deliveryId: string },
  body: string,
  options: WebhookOptions & { now?: Date } = {},
): Promise<SendResult> {
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  let url: URL;
  try {
    url = parseWebhookUrl(target.url, options);
  } catch {
    return { ok: false, status: null, error: failure('refused by policy'), durationMs: elapsed() };
  }
  const host = hostOf(url);
  const plainHttp = url.protocol === 'http:';
  const requireLoopback = plainHttp && !options.allowHttp;
  if (net.isIP(host) !== 0 && requireLoopback && !isLoopback(host)) {
    return { ok: false, status: null, error: failure('refused by policy'), durationMs: elapsed() };
  }
  const timestamp = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxResponseBytes = options.maxResponseBytes ?? 4_096;
  const payload = Buffer.from(body, 'utf8');

  return new Promise<SendResult>((resolve) => {
    let settled = false;
    let timedOut = false;
    const finish = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const request = (plainHttp ? http : https).request(
      url,
      {
        method: 'POST',
        lookup: guardedLookup(requireLoopback, options.allowLoopback ?? false),
        // No pooled sockets: each delivery resolves and checks its addresses afresh.
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': String(payload.length),
          'user-agent': 'airlock-alerts/1',
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signAlertBody(target.secret, timestamp, body),
          [DELIVERY_HEADER]: target.deliveryId,
        },
      },
      (response) => {
        const status = response.statusCode ?? 0;
        let size = 0;
        const settle = () => {
          if (status >= 200 && status < 300) return finish({ ok: true, status, durationMs: elapsed() });
          // Only the status: the body stays unread by anyone, so a destination is no probe.
          const reason = status >= 300 && status < 400 ? ': redirects are not followed' : '';
          finish({ ok: false, status, error: failure(`HTTP ${status}${reason}`), durationMs: elapsed() });
        };
        response.on('data', (chunk: Buffer) => {
          if (size >= maxResponseBytes) return;
          size += chunk.length;
          // Enough read: stop the server from streaming an unbounded body at us.
          if (size >= maxResponseBytes) {
            response.destroy();
            settle();
          }
        });
        response.on('end', settle);
        response.on('error', settle);
      },
    );
    const timer = setTimeout(() => {
      timedOut = true;
      request.destroy(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    request.on('error', (error) => {
      const refusedByPolicy = Reflect.get(error, 'code') === REFUSED_ADDRESS;
      finish({ ok: false, status: null, error: failure(timedOut ? 'timed out' : refusedByPolicy ? 'refused by policy' : 'could not connect'), durationMs: elapsed() });
    });
    request.end(payload);
  });
}
