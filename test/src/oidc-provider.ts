/**
 * A real OpenID Provider for the single sign-on tests: `oidc-provider` (a certified implementation)
 * on a loopback port, over plain http (allowed for loopback issuers only). Its users live in memory
 * and the test changes them (groups, removal) between logins. Its login page is a one-field form
 * the browser test fills in; `autoLogin` signs the next interaction in without a page, for the tests
 * that drive the flow over plain HTTP.
 *
 * `tamper` makes it misbehave honestly: the token endpoint's ID token is re-signed with the
 * provider's own key after one claim is changed (audience, nonce, expiry, issuer), which is what a
 * compromised or misconfigured IdP would send. The relying party must refuse each one.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

export interface IdpUser {
  sub: string;
  email: string;
  groups: string[];
}

export type Tamper = ((claims: JWTPayload) => JWTPayload) | null;

export interface TestIdp {
  issuer: string;
  users: Map<string, IdpUser>;
  /** Signs the next interaction in as this user without showing a page; null shows the form. */
  autoLogin: string | null;
  /** Rewrites the next ID tokens the token endpoint returns; null leaves them alone. */
  tamper: Tamper;
  /** How many ID tokens were rewritten, so a test knows its tampering happened. */
  tampered: number;
  /** How many authorization codes the token endpoint was asked to redeem. */
  tokenRequests: number;
  close(): Promise<void>;
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 10_000) reject(new Error('form too large'));
    });
    req.once('end', () => resolve(new URLSearchParams(body)));
    req.once('error', reject);
  });
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

export async function startTestIdp(options: { clientId: string; clientSecret: string; redirectUri: string; users: IdpUser[] }): Promise<TestIdp> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'test-idp-1', alg: 'RS256', use: 'sig' };
  const signingKey = await importJWK(jwk, 'RS256');

  const users = new Map(options.users.map((user) => [user.sub, user]));
  const configuration: Configuration = {
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: [options.redirectUri],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk as never] },
    cookies: { keys: ['airlock-test-idp-cookie-key-0123456789'] },
    claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups'],
    // Groups in the ID token itself, as enterprise IdPs send them.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: user.email, groups: [...user.groups] }) };
    },
    // First-party client: consent is implied, as an enterprise IdP configures it.
    loadExistingGrant: async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const clientId = ctx.oidc.client?.clientId;
      if (!accountId || !clientId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ accountId, clientId });
      grant.addOIDCScope('openid email groups');
      await grant.save();
      return grant;
    },
  };
  const provider = new Provider(issuer, configuration);
  const handle = provider.callback();

  const idp: TestIdp = {
    issuer,
    users,
    autoLogin: null,
    tamper: null,
    tampered: 0,
    tokenRequests: 0,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  async function finishLogin(req: IncomingMessage, res: ServerResponse, accountId: string): Promise<void> {
    await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (action === 'login' && req.method === 'POST') {
      const form = await readForm(req);
      const username = form.get('username') ?? '';
      if (!users.has(username)) {
        res.writeHead(403, { 'content-type': 'text/plain' });
        res.end('unknown user');
        return;
      }
      return finishLogin(req, res, username);
    }
    if (idp.autoLogin !== null) return finishLogin(req, res, idp.autoLogin);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><head><title>Test IdP sign-in</title></head><body><main>
<h1>Test identity provider</h1>
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="username">Username</label> <input id="username" name="username" autocomplete="username">
<button type="submit">Continue</button>
</form></main></body></html>`);
  }

  /** Lets the token endpoint answer, rewriting the ID token in its JSON body when `tamper` is set. */
  function tokenEndpoint(req: IncomingMessage, res: ServerResponse): void {
    idp.tokenRequests += 1;
    const tamper = idp.tamper;
    if (tamper) {
      const end = res.end.bind(res) as (chunk?: unknown) => ServerResponse;
      let rewritten = false;
      res.end = ((chunk?: unknown) => {
        if (rewritten || (typeof chunk !== 'string' && !Buffer.isBuffer(chunk))) return end(chunk);
        rewritten = true;
        const body = JSON.parse(chunk.toString()) as Record<string, unknown>;
        if (typeof body['id_token'] !== 'string') return end(chunk);
        const token = body['id_token'];
        void (async () => {
          const header = decodeProtectedHeader(token);
          const claims = tamper(decodeJwt(token));
          body['id_token'] = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: header.kid ?? jwk.kid ?? '', typ: 'JWT' }).sign(signingKey);
          idp.tampered += 1;
          const text = JSON.stringify(body);
          res.setHeader('content-length', Buffer.byteLength(text));
          end(text);
        })();
        return res;
      }) as typeof res.end;
    }
    void handle(req, res);
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const { pathname } = new URL(req.url ?? '/', issuer);
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(pathname);
    if (match?.[1] !== undefined) {
      interaction(req, res, match[1], match[2]).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(error instanceof Error ? error.message : 'interaction failed');
      });
      return;
    }
    if (pathname === '/token' && req.method === 'POST') return tokenEndpoint(req, res);
    void handle(req, res);
  });
  return idp;
}
