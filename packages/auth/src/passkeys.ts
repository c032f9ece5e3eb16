/**
 * WebAuthn passkeys as a second factor (@simplewebauthn/server). The relying party is the host the
 * console is served from: its origin and hostname are what the browser's signed client data and
 * authenticator data must name. Challenges are single use: a registration's is kept on the
 * account, a login's on its pending login, and each is cleared when it is checked.
 */
import {
  type AuthenticationResponseJSON,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { UserError } from '@airlock/errors';
import { appendAudit, type Database, type Queryable, recordAudit } from '@airlock/storage';

/** Where the console is, as WebAuthn sees it. */
export interface RelyingParty {
  origin: string;
  id: string;
}

/** The relying party of a request to `host` (the Host header), under TLS or not. */
export function relyingPartyOf(host: string | null, secure: boolean): RelyingParty {
  if (host === null || host === '') throw new UserError('the request names no host');
  const origin = `${secure ? 'https' : 'http'}://${host}`;
  return { origin, id: new URL(origin).hostname };
}

interface CredentialRow {
  id: string;
  public_key: string;
  counter: string;
  transports: string[];
}

type Transport = NonNullable<RegistrationResponseJSON['response']['transports']>[number];

export async function beginPasskeyRegistration(tx: Queryable, rp: RelyingParty, user: { id: string; email: string }): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await tx.query<CredentialRow>('SELECT id, public_key, counter::text, transports FROM webauthn_credentials WHERE user_id = $1', [user.id]);
  const options = await generateRegistrationOptions({
    rpName: 'Airlock',
    rpID: rp.id,
    userName: user.email,
    userID: new TextEncoder().encode(user.id),
    attestationType: 'none',
    excludeCredentials: existing.map((credential) => ({ id: credential.id, transports: credential.transports as Transport[] })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
  });
  await tx.query('UPDATE admin_users SET webauthn_challenge = $2 WHERE id = $1', [user.id, options.challenge]);
  return options;
}

/** Checks a registration against the account's challenge (then cleared) and stores the credential. */
export async function finishPasskeyRegistration(
  db: Database,
  rp: RelyingParty,
  user: { id: string; email: string; tenantId: string },
  response: RegistrationResponseJSON,
  sourceIp: string | null,
  now: Date,
): Promise<{ id: string }> {
  const outcome = await db.transaction(async (tx): Promise<{ id: string } | { refused: string }> => {
    const [row] = await tx.query<{ webauthn_challenge: string | null }>('SELECT webauthn_challenge FROM admin_users WHERE id = $1 FOR UPDATE', [user.id]);
    await tx.query('UPDATE admin_users SET webauthn_challenge = NULL WHERE id = $1', [user.id]);
    const challenge = row?.webauthn_challenge ?? null;
    if (challenge === null) return { refused: 'no-challenge' };
    let verified;
    try {
      verified = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: false });
    } catch (error) {
      return { refused: error instanceof Error ? error.message.slice(0, 200) : 'invalid' };
    }
    if (!verified.verified) return { refused: 'not-verified' };
    const { credential } = verified.registrationInfo;
    await tx.query(
      'INSERT INTO webauthn_credentials (id, tenant_id, user_id, public_key, counter, transports, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [credential.id, user.tenantId, user.id, Buffer.from(credential.publicKey).toString('base64url'), credential.counter, credential.transports ?? [], now],
    );
    await appendAudit(tx, { tenantId: user.tenantId, actor: { type: 'admin', id: user.id }, action: 'passkey-register', target: user.email, outcome: 'success', sourceIp, meta: { passkeyId: credential.id } }, now);
    return { id: credential.id };
  });
  if ('id' in outcome) return outcome;
  await recordAudit(db, { tenantId: user.tenantId, actor: { type: 'admin', id: user.id }, action: 'passkey-register', target: user.email, outcome: 'denied', sourceIp, meta: { reason: outcome.refused } });
  throw new UserError('the passkey could not be registered; try again');
}

/** Assertion options for a pending login's account; the challenge is kept on the pending login. */
export async function beginPasskeyAssertion(tx: Queryable, rp: RelyingParty, pendingTokenHash: string, userId: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
  const credentials = await tx.query<CredentialRow>('SELECT id, public_key, counter::text, transports FROM webauthn_credentials WHERE user_id = $1', [userId]);
  if (credentials.length === 0) throw new UserError('this account has no passkey');
  const options = await generateAuthenticationOptions({
    rpID: rp.id,
    allowCredentials: credentials.map((credential) => ({ id: credential.id, transports: credential.transports as Transport[] })),
    userVerification: 'preferred',
  });
  await tx.query('UPDATE pending_logins SET webauthn_challenge = $2 WHERE token_sha256 = $1', [pendingTokenHash, options.challenge]);
  return options;
}

/**
 * Whether `response` is a valid assertion by one of `userId`'s passkeys for the pending login's
 * challenge (cleared whatever the answer); a valid one moves the credential's counter forward.
 */
export async function acceptPasskeyAssertion(tx: Queryable, rp: RelyingParty, pendingTokenHash: string, userId: string, response: AuthenticationResponseJSON, now: Date): Promise<boolean> {
  const [pending] = await tx.query<{ challenge: string | null }>('SELECT webauthn_challenge AS challenge FROM pending_logins WHERE token_sha256 = $1 FOR UPDATE', [pendingTokenHash]);
  await tx.query('UPDATE pending_logins SET webauthn_challenge = NULL WHERE token_sha256 = $1', [pendingTokenHash]);
  const [credential] = await tx.query<CredentialRow>('SELECT id, public_key, counter::text, transports FROM webauthn_credentials WHERE id = $1 AND user_id = $2', [response.id, userId]);
  if (!pending?.challenge || !credential) return false;
  try {
    const verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: pending.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      credential: { id: credential.id, publicKey: new Uint8Array(Buffer.from(credential.public_key, 'base64url')), counter: Number(credential.counter), transports: credential.transports as Transport[] },
      requireUserVerification: false,
    });
    if (!verified.verified) return false;
    await tx.query('UPDATE webauthn_credentials SET counter = $2, last_used_at = $3 WHERE id = $1', [credential.id, verified.authenticationInfo.newCounter, now]);
    return true;
  } catch {
    return false;
  }
}
