/**
 * The two browser endpoints of single sign-on, outside tRPC because both answer with redirects:
 * `GET /auth/oidc/start?tenant=<name>&provider=<id>` sends the browser to the provider, and
 * `GET /auth/oidc/callback?code=...&state=...` is where the provider sends it back. Both count
 * against the source address's rate limit like any unauthenticated call. The outcome goes back to
 * the console as a redirect: `/` with the session cookie set, or `/?sso=failed`.
 */
import type { ServerResponse } from 'node:http';
import {
  addressKey,
  type AuthSettings,
  beginSsoLogin,
  clearedLegacySessionCookie,
  finishSsoLogin,
  type RateLimits,
  sessionCookie,
  SSO_BROWSER_COOKIE,
  SSO_CALLBACK_PATH,
  SSO_START_PATH,
  SsoRefused,
  type SsoRequest,
} from '@airlock/auth';
import type { ServerDeps } from './context.ts';
import { securityHeaders } from './static-files.ts';

const browserCookieName = (secure: boolean) => (secure ? `__Host-${SSO_BROWSER_COOKIE}` : SSO_BROWSER_COOKIE);

/**
 * SameSite=Lax, unlike the session cookie: the provider's redirect back is a cross-site navigation,
 * on which a Strict cookie would not be sent. It holds only the binding, never a session.
 */
function browserCookie(token: string, secure: boolean, maxAgeSeconds: number): string {
  return `${browserCookieName(secure)}=${token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

function browserTokenOf(cookieHeader: string | undefined, secure: boolean): string | null {
  const name = browserCookieName(secure);
  const values = (cookieHeader ?? '')
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${name}=`))
    .map((pair) => pair.slice(name.length + 1));
  // Two binding cookies: one was planted; neither is trusted.
  return values.length === 1 && /^[A-Za-z0-9_-]{43}$/.test(values[0] ?? '') ? (values[0] ?? null) : null;
}

function redirect(res: ServerResponse, location: string, cookies: string[] = []): void {
  res.writeHead(303, { ...securityHeaders, location, 'cache-control': 'no-store', ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}) });
  res.end();
}

/** Whether `pathname` is one of the single sign-on endpoints this module answers. */
export function isSsoPath(pathname: string): boolean {
  return pathname === SSO_START_PATH || pathname === SSO_CALLBACK_PATH;
}

export async function handleSso(
  deps: ServerDeps,
  auth: AuthSettings,
  limits: RateLimits,
  request: { method: string; url: URL; host: string | undefined; cookie: string | undefined; sourceIp: string | null },
  res: ServerResponse,
): Promise<void> {
  if (request.method !== 'GET') {
    res.writeHead(405, { ...securityHeaders, allow: 'GET', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed');
    return;
  }
  const verdict = await limits.consume('ip', addressKey(request.sourceIp));
  if (!verdict.allowed) {
    res.writeHead(429, { ...securityHeaders, 'retry-after': String(verdict.retryAfterSeconds), 'content-type': 'text/plain; charset=utf-8' });
    res.end('too many requests');
    return;
  }
  const box = deps.alerts?.secretBox;
  if (!box || request.host === undefined) {
    res.writeHead(503, { ...securityHeaders, 'content-type': 'text/plain; charset=utf-8' });
    res.end('single sign-on is not configured on this server');
    return;
  }
  const sso: SsoRequest = { db: deps.db.forSystem(), box, settings: auth, sourceIp: request.sourceIp, now: deps.now() };
  const failed = () => redirect(res, '/?sso=failed', [browserCookie('', auth.secureCookies, 0)]);
  try {
    if (request.url.pathname === SSO_START_PATH) {
      // The redirect URI names the host the browser used; the provider accepts only the ones its
      // client registration lists, so a forged Host header leads nowhere.
      const redirectUri = `${auth.secureCookies ? 'https' : 'http'}://${request.host}${SSO_CALLBACK_PATH}`;
      const { authorizationUrl, browserToken } = await beginSsoLogin(sso, {
        tenant: request.url.searchParams.get('tenant') ?? '',
        providerId: request.url.searchParams.get('provider') ?? '',
        redirectUri,
      });
      redirect(res, authorizationUrl.href, [browserCookie(browserToken, auth.secureCookies, 600)]);
      return;
    }
    const { token } = await finishSsoLogin(sso, request.url, browserTokenOf(request.cookie, auth.secureCookies));
    const cookies = [sessionCookie(token, auth.secureCookies), browserCookie('', auth.secureCookies, 0)];
    if (auth.secureCookies) cookies.push(clearedLegacySessionCookie());
    redirect(res, '/', cookies);
  } catch (error) {
    if (error instanceof SsoRefused) return failed();
    deps.logger.error({ path: request.url.pathname, error: error instanceof Error ? error.message : 'unknown' }, 'single sign-on failed');
    return failed();
  }
}
