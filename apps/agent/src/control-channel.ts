/**
 * The agent's only link to the control plane: outbound HTTPS calls, each signed with the agent's
 * Ed25519 key over method, path and query, body digest, time and nonce. There is no listener.
 */
import os from 'node:os';
import { createTRPCClient, httpLink } from '@trpc/client';
import type { AppRouter } from '@airlock/api/router';
import { type AgentKeyPair, signRequest } from '@airlock/identity';
import { fetchNamingFailures, formatIssues, UnexpectedError, UserError } from '@airlock/errors';
import { escapeUnprintable, truncateText } from '@airlock/protocol';
import { createEgress, type Egress, effectiveProxySettings, proxyCredentialSchema, type ProxySettings } from './egress.ts';
import { loadSecrets } from './secrets.ts';
import { type OpenWakeups, WakeupStream } from './wakeups.ts';

export type ControlPlaneClient = ReturnType<typeof createAgentClient>;

function requestUrl(input: string | URL | Request): URL {
  if (typeof input === 'string') return new URL(input);
  return input instanceof URL ? input : new URL(input.url);
}

/**
 * Calls to the control plane refuse a redirect instead of following it: a signed request, or an
 * enrollment token, goes to the URL the admin configured and nowhere else. A refused redirect is
 * told as such (`network-redirect`). Refusing also spares fetch a copy of every request, which it
 * makes only in case it must send it again.
 */
function controlPlaneFetch(egressFetch: typeof fetch): typeof fetch {
  return fetchNamingFailures((input, init) => egressFetch(input, { ...init, redirect: 'error', window: null }));
}

/**
 * Every call goes through `egressFetch` (egress.ts: direct or through the proxy). A refused
 * connection, an unresolvable name or a proxy's refusal says which URL, in the log and at the CLI.
 */
export function createAgentClient(controlPlaneUrl: string, agentId: string, keyPair: AgentKeyPair, egressFetch: typeof fetch = fetch) {
  const namingFailures = controlPlaneFetch(egressFetch);
  const signedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = requestUrl(input);
    const body = init?.body ?? '';
    if (typeof body !== 'string') throw new UnexpectedError('only string bodies are signed');
    const headers = new Headers(init?.headers);
    const signature = signRequest(keyPair, { agentId, method: init?.method ?? 'GET', pathAndQuery: `${url.pathname}${url.search}`, body });
    for (const [name, value] of Object.entries(signature)) headers.set(name, value);
    return namingFailures(url, { ...init, headers });
  };
  const client = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${controlPlaneUrl}/trpc`, fetch: signedFetch })] });
  wakeupOpeners.set(client, (signal) => signedFetch(`${controlPlaneUrl}/trpc/agent.wakeups`, { headers: { accept: 'text/event-stream' }, signal }));
  return client;
}

/** How each signed client opens its wake-up stream, which tRPC's request links do not carry. */
const wakeupOpeners = new WeakMap<object, OpenWakeups>();

/** The wake-up stream of a client made by `createAgentClient`, signed with its key; null for any other client. */
export function wakeupStreamOf(client: ControlPlaneClient): WakeupStream | null {
  const open = wakeupOpeners.get(client);
  return open ? new WakeupStream(open) : null;
}

/** Enrollment is the one unsigned call: the one-time token is the credential. */
export function createEnrollmentClient(controlPlaneUrl: string, egressFetch: typeof fetch = fetch) {
  return createTRPCClient<AppRouter>({ links: [httpLink({ url: `${controlPlaneUrl}/trpc`, fetch: controlPlaneFetch(egressFetch) })] });
}

/**
 * The egress for the control plane at `controlPlaneUrl`: agent.json's `proxy` (else the
 * environment's) and CA bundle, with the proxy credential read from secrets.yaml when one is named.
 */
export async function openEgress(
  controlPlaneUrl: string,
  settings: { proxy?: ProxySettings | undefined; controlPlaneCaFile?: string | undefined },
  config: { proxyFromEnv: ProxySettings; secretsFile: string },
): Promise<Egress> {
  const ref = effectiveProxySettings({ configured: settings.proxy, fromEnv: config.proxyFromEnv }).credential;
  let credential: { username: string; password: string } | undefined;
  if (ref !== undefined) {
    const entry = await (await loadSecrets(config.secretsFile))(ref);
    const parsed = proxyCredentialSchema.safeParse(entry);
    // Paths and messages only: zod's issue messages for these fields never quote the value.
    if (!parsed.success) throw new UserError(`proxy credential ${JSON.stringify(ref)} in ${config.secretsFile}: ${formatIssues(parsed.error.issues)}`);
    credential = parsed.data;
  }
  return createEgress(controlPlaneUrl, { configured: settings.proxy, fromEnv: config.proxyFromEnv, caFile: settings.controlPlaneCaFile, credential });
}

/**
 * The host name as the agent reports it: escaped and cut to what the control plane accepts, since
 * a name with control characters would be refused on every heartbeat and the agent would go dark.
 */
export function reportedHostname(name = os.hostname()): string {
  return truncateText(escapeUnprintable(name), 255) || 'unknown';
}
