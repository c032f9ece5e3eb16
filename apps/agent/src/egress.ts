/**
 * How the agent's control-channel traffic leaves the host: straight out, or through an HTTP proxy,
 * read the way curl reads it. `https_proxy`/`HTTPS_PROXY` for an https control plane,
 * `http_proxy`/`HTTP_PROXY` for an http one, `all_proxy`/`ALL_PROXY` for either when the specific one
 * is unset; `no_proxy`/`NO_PROXY` lists the hosts that are reached directly. The same settings in
 * agent.json (`proxy`) take the place of the environment's. A proxy's Basic credential lives in
 * secrets.yaml, named by `proxy.credential`; a URL with a credential in it is refused in agent.json
 * and never shown anywhere.
 *
 * TLS to the control plane trusts the system's roots, `NODE_EXTRA_CA_CERTS` (Node adds it to the
 * defaults) and, when configured, a CA bundle (`controlPlaneCaFile`), as an intercepting proxy's
 * private CA needs. Trusting that CA lets the proxy read the channel, never steer the agent: work,
 * checkpoints and key rotations are accepted only under the pinned control-plane key's signature.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { UserError } from '@airlock/errors';

/** agent.json is not secret: a user or password in a proxy URL there is refused. */
const proxyUrl = z.url().refine((url) => {
  const parsed = new URL(url);
  return parsed.username === '' && parsed.password === '';
}, 'a proxy credential belongs in secrets.yaml (proxy.credential names its entry), not in the URL');

/** The proxy settings as agent.json holds them; every field optional. */
export const proxySettingsSchema = z.strictObject({
  /** Proxy for an https control plane. */
  https: proxyUrl.optional(),
  /** Proxy for an http control plane. */
  http: proxyUrl.optional(),
  /** Hosts reached directly, as NO_PROXY lists them. */
  noProxy: z.string().optional(),
  /** The secrets.yaml entry holding the proxy's `username` and `password`. */
  credential: z.string().min(1).optional(),
});
export type ProxySettings = z.infer<typeof proxySettingsSchema>;

/** The secrets.yaml shape of a proxy credential. */
export const proxyCredentialSchema = z.strictObject({ username: z.string().min(1), password: z.string() });

/** The proxy variables as curl reads them; lowercase first, as curl prefers it. */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv): ProxySettings {
  const first = (...names: string[]) => names.map((name) => env[name]).find((value) => value !== undefined && value !== '');
  const all = first('all_proxy', 'ALL_PROXY');
  const https = first('https_proxy', 'HTTPS_PROXY') ?? all;
  const http = first('http_proxy', 'HTTP_PROXY') ?? all;
  const noProxy = first('no_proxy', 'NO_PROXY');
  return { ...(https === undefined ? {} : { https }), ...(http === undefined ? {} : { http }), ...(noProxy === undefined ? {} : { noProxy }) };
}

/** A proxy URL as it may be shown: scheme, host and port, never a user or password. */
export function redactProxyUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return '(not a URL)';
  }
}

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function ipv6ToBigInt(address: string): bigint {
  const [head = '', tail] = address.split('::');
  const parts = (text: string) => (text === '' ? [] : text.split(':'));
  const expand = (groups: string[]) =>
    groups.flatMap((group) => {
      if (!group.includes('.')) return [group];
      const n = ipv4ToNumber(group);
      return [(n >>> 16).toString(16), (n & 0xffff).toString(16)];
    });
  const left = expand(parts(head));
  const right = tail === undefined ? [] : expand(parts(tail));
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((n, group) => (n << 16n) + BigInt(Number.parseInt(group, 16)), 0n);
}

function inCidr(host: string, network: string, bits: number): boolean {
  const family = isIP(host);
  if (family === 0 || family !== isIP(network)) return false;
  if (family === 4) {
    if (bits > 32) return false;
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return ((ipv4ToNumber(host) & mask) >>> 0) === ((ipv4ToNumber(network) & mask) >>> 0);
  }
  if (bits > 128) return false;
  const shift = BigInt(128 - bits);
  return ipv6ToBigInt(host) >> shift === ipv6ToBigInt(network) >> shift;
}

/** One NO_PROXY entry: `host`, `.domain`, `*.domain`, `host:port`, an IP, `[v6]:port` or a CIDR range. */
function parseEntry(raw: string): { name: string; port: number | undefined; bits: number | undefined } {
  let text = raw.toLowerCase();
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    text = bracketed[1] ?? '';
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
  } else {
    const withPort = /^([^:]+):(\d+)$/.exec(text);
    if (withPort) {
      text = withPort[1] ?? '';
      port = Number(withPort[2]);
    }
  }
  const cidr = /^(.+)\/(\d{1,3})$/.exec(text);
  if (cidr && isIP(cidr[1] ?? '') !== 0) return { name: cidr[1] ?? '', port, bits: Number(cidr[2]) };
  return { name: text.replace(/^\*?\./, '').replace(/\.$/, ''), port, bits: undefined };
}

/**
 * Whether NO_PROXY sends `url` straight out, as curl decides it: `*` alone matches every host; a
 * name matches itself and every name under it (a leading `.` or `*.` is ignored); an IP address
 * matches itself, a CIDR range its members; an entry with a port matches that port only.
 */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (noProxy === undefined) return false;
  const entries = noProxy.split(/[\s,]+/).filter((entry) => entry !== '');
  if (entries.length === 1 && entries[0] === '*') return true;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return entries.some((raw) => {
    const entry = parseEntry(raw);
    if (entry.port !== undefined && entry.port !== port) return false;
    if (entry.bits !== undefined) return inCidr(host, entry.name, entry.bits);
    if (entry.name === '') return false;
    if (isIP(host) !== 0 || isIP(entry.name) !== 0) return isIP(host) !== 0 && isIP(entry.name) !== 0 && ipv6Equal(host, entry.name);
    return host === entry.name || host.endsWith(`.${entry.name}`);
  });
}

function ipv6Equal(a: string, b: string): boolean {
  if (isIP(a) !== isIP(b)) return false;
  return isIP(a) === 4 ? a === b : ipv6ToBigInt(a) === ipv6ToBigInt(b);
}

/** What the egress was set up from, and what the agent may say about it (no credential). */
export interface EgressInputs {
  /** agent.json's `proxy`, when present: it replaces the environment's proxy variables whole. */
  configured: ProxySettings | undefined;
  fromEnv: ProxySettings;
  /** agent.json's `controlPlaneCaFile`: PEM certificates trusted besides the system's roots. */
  caFile: string | undefined;
  /** The proxy credential from secrets.yaml, when `proxy.credential` names one. */
  credential: { username: string; password: string } | undefined;
}

export interface Egress {
  /** The fetch every control-plane call goes through. */
  readonly fetch: typeof fetch;
  /** The proxy in use for the control plane, redacted; undefined when it is reached directly. */
  readonly proxy: string | undefined;
  close(): Promise<void>;
}

/** The settings in force: agent.json's when it has a `proxy` section, else the environment's. */
export function effectiveProxySettings(inputs: Pick<EgressInputs, 'configured' | 'fromEnv'>): ProxySettings {
  return inputs.configured ?? inputs.fromEnv;
}

/** The proxy URL for `target` under `settings`, or undefined for a direct connection. */
export function proxyFor(target: URL, settings: ProxySettings): string | undefined {
  const proxy = target.protocol === 'https:' ? settings.https : settings.http;
  if (proxy === undefined || bypassesProxy(target, settings.noProxy)) return undefined;
  return proxy;
}

function basicToken(credential: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`;
}

/**
 * The fetch for the control plane at `controlPlaneUrl`. Straight out with the system's roots, it is
 * Node's own fetch. With a CA bundle, one undici Agent that adds the bundle to Node's roots (so
 * NODE_EXTRA_CA_CERTS and the system's roots keep working); through a proxy, one undici ProxyAgent
 * tunnelling with CONNECT, with the bundle for the control plane's TLS and an https proxy's. undici
 * is loaded only then: a second copy of what Node's fetch already is, it costs the agent 5 to 10 MB
 * of resident memory.
 */
export async function createEgress(controlPlaneUrl: string, inputs: EgressInputs): Promise<Egress> {
  const target = new URL(controlPlaneUrl);
  const settings = effectiveProxySettings(inputs);
  let ca: string[] | undefined;
  if (inputs.caFile !== undefined) {
    const bundle = await readFile(inputs.caFile, 'utf8').catch((error: unknown) => {
      throw new UserError(`controlPlaneCaFile ${inputs.caFile ?? ''} cannot be read: ${error instanceof Error ? error.message : String(error)}`);
    });
    if (!bundle.includes('-----BEGIN CERTIFICATE-----')) throw new UserError(`controlPlaneCaFile ${inputs.caFile}: no PEM certificate in it`);
    ca = [...rootCertificates, bundle];
  }
  const tls = ca === undefined ? undefined : { ca };
  const proxy = proxyFor(target, settings);
  let proxyUrl: URL | undefined;
  if (proxy !== undefined) {
    try {
      proxyUrl = new URL(proxy);
    } catch {
      throw new UserError(`the proxy for ${target.origin} is not a URL: ${redactProxyUrl(proxy)}`);
    }
    if (proxyUrl.protocol !== 'http:' && proxyUrl.protocol !== 'https:') throw new UserError(`proxy ${redactProxyUrl(proxy)}: only http:// and https:// proxies are supported`);
    const inUrl = proxyUrl.username !== '' || proxyUrl.password !== '';
    if (inUrl && inputs.credential !== undefined) throw new UserError(`proxy ${redactProxyUrl(proxy)}: a credential in the URL and one in secrets.yaml; keep only the one in secrets.yaml`);
  }
  if (proxyUrl === undefined && tls === undefined) {
    // Node's global fetch with its default dispatcher: nothing of its own to close.
    return { fetch: (input, init) => fetch(input, init), proxy: undefined, close: () => Promise.resolve() };
  }
  const { Agent, fetch: undiciFetch, ProxyAgent } = await import('undici');
  const dispatcher: Dispatcher =
    proxyUrl === undefined
      ? new Agent({ connect: tls })
      : new ProxyAgent({
          uri: proxyUrl.href,
          ...(inputs.credential === undefined ? {} : { token: basicToken(inputs.credential) }),
          ...(tls === undefined ? {} : { requestTls: tls, proxyTls: tls }),
        });
  const egressFetch = ((input: string | URL | Request, init?: RequestInit) =>
    // undici's own fetch: Node's global fetch bundles another undici, which cannot take this dispatcher.
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as unknown as typeof fetch;
  return { fetch: egressFetch, proxy: proxy === undefined ? undefined : redactProxyUrl(proxy), close: () => dispatcher.close() };
}
