/**
 * The console's sign-in paths in headless Chromium: single sign-on through a real OpenID Provider
 * (oidc-provider on loopback, its login form filled in the browser), and a local account turning on
 * two-step sign-in from the Account page (the QR code's secret read off the page, codes from otplib)
 * and then signing in with a code. Screenshots land in test/artifacts/identity.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { authenticator } from 'otplib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bootstrapTenant,
  connectPostgres,
  createAdminUserInTenant,
  createHttpHandler,
  createStaticHandler,
  type Database,
  Dispatcher,
  migrate,
  secretBoxFromKey,
  signerFromSecretKey,
} from '@airlock/api';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { launchChromium, screenshot } from '../src/browser.ts';
import { buildConsole } from '../src/console-build.ts';
import { startTestIdp, type TestIdp } from '../src/oidc-provider.ts';
import { REPO_ROOT } from '../src/system.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts/identity');
const UI_TIMEOUT_MS = 15_000;
const TENANT = 'acme';
const CLIENT_ID = 'airlock-console';
const CLIENT_SECRET = randomBytes(24).toString('base64url');

describe('identity in Chromium', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let idp: TestIdp;
  let browser: Browser;
  let consoleDir: string;
  const local = { email: 'olivia@acme.test', password: randomBytes(18).toString('base64url') };
  const passkeyUser = { email: 'paula@acme.test', password: randomBytes(18).toString('base64url') };

  beforeAll(async () => {
    consoleDir = await mkdtemp(path.join(tmpdir(), 'airlock-identity-console-'));
    const [databaseUrl] = await Promise.all([createTestDatabase(inject('postgresUrl')), buildConsole(consoleDir)]);
    db = connectPostgres(databaseUrl, { maxConnections: 10 });
    await migrate(db);
    const { key } = await bootstrapTenant(db, { tenant: TENANT, keyName: 'first', expiresInDays: 30 });
    await createAdminUserInTenant(db, { tenant: TENANT, email: local.email, role: 'operator', password: local.password }, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await createAdminUserInTenant(db, { tenant: TENANT, email: passkeyUser.email, role: 'auditor', password: passkeyUser.password }, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    const handler = createHttpHandler(
      {
        db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(),
        logger: { warn: () => undefined, error: () => undefined },
        signer: signerFromSecretKey(generateKeyPair().secretKey),
        alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 2_000, allowLoopback: true } },
        auth: { scrypt: { N: 2 ** 10, r: 8, p: 1 } },
      },
      { maxBodyBytes: 256 * 1024, console: await createStaticHandler(consoleDir) },
    );
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    idp = await startTestIdp({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUri: `${base}/auth/oidc/callback`,
      users: [{ sub: 'alice-0001', email: 'alice@acme.test', groups: ['airlock-admins'] }],
    });
    const owner = { 'content-type': 'application/json', authorization: `Bearer ${key}` };
    const created = await fetch(`${base}/trpc/sso.createProvider`, {
      method: 'POST',
      headers: owner,
      body: JSON.stringify({ name: 'Acme IdP', issuer: idp.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }),
    });
    const providerId = ((await created.json()) as { result: { data: { id: string } } }).result.data.id;
    const mapped = await fetch(`${base}/trpc/sso.setMappings`, {
      method: 'POST',
      headers: owner,
      body: JSON.stringify({ providerId, mappings: [{ claimValue: 'airlock-admins', role: 'admin' }] }),
    });
    expect(mapped.status).toBe(200);
    browser = await launchChromium();
    console.log(`identity screenshots: ${ARTIFACTS}`);
  });

  afterAll(async () => {
    await browser?.close();
    await idp?.close();
    server?.close();
    await db?.close();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  async function openPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    return context.newPage();
  }

  it('[identity:oidc] signs in through the tenant\'s identity provider from the login page', async () => {
    const page = await openPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Tenant').fill(TENANT);
    const ssoLink = page.getByRole('link', { name: 'Sign in with Acme IdP' });
    await ssoLink.waitFor();
    await screenshot(page, ARTIFACTS, '01-login-offers-sso');
    await ssoLink.click();
    await page.getByRole('heading', { name: 'Test identity provider' }).waitFor();
    expect(new URL(page.url()).origin).toBe(idp.issuer);
    await page.getByLabel('Username').fill('alice-0001');
    await screenshot(page, ARTIFACTS, '02-idp-login');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    expect(page.url()).toBe(`${base}/`);
    await page.getByText('alice@acme.test').first().waitFor();
    await screenshot(page, ARTIFACTS, '03-signed-in-through-sso');
    const [row] = await db.forSystem().query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'sso-login'");
    expect(row?.n).toBe(1);
    await page.context().close();
  });

  it('[identity:mfa] turns on two-step sign-in from the Account page and then signs in with a code', async () => {
    const page = await openPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Tenant').fill(TENANT);
    await page.getByLabel('Email').fill(local.email);
    await page.getByLabel('Password').fill(local.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Account' }).waitFor();
    await page.getByRole('button', { name: 'Set up authenticator app' }).click();
    await page.getByTestId('totp-qr').waitFor();
    const secret = (await page.getByTestId('totp-secret').innerText()).trim();
    expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
    await screenshot(page, ARTIFACTS, '04-totp-qr-code');
    await page.getByLabel('Authentication code', { exact: true }).fill(authenticator.generate(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByTestId('recovery-codes').waitFor();
    expect(await page.getByTestId('recovery-codes').locator('li').count()).toBe(10);
    const recoveryCodes = await page.getByTestId('recovery-codes').locator('li').allInnerTexts();
    await screenshot(page, ARTIFACTS, '05-recovery-codes');
    await page.context().close();

    // A fresh browser: the password alone no longer opens a session.
    const next = await openPage();
    await next.goto(`${base}/`);
    await next.getByLabel('Tenant').fill(TENANT);
    await next.getByLabel('Email').fill(local.email);
    await next.getByLabel('Password').fill(local.password);
    await next.getByRole('button', { name: 'Sign in' }).click();
    await next.getByRole('heading', { name: 'Enter your authentication code' }).waitFor();
    // The enrollment's code was spent; wait for the next 30-second step rather than replay it.
    const step = () => Math.floor(Date.now() / 30_000);
    const enrolledStep = step();
    while (step() === enrolledStep) await new Promise((resolve) => setTimeout(resolve, 500));
    await next.getByLabel('Authentication code', { exact: true }).fill(authenticator.generate(secret));
    await screenshot(next, ARTIFACTS, '06-second-factor-prompt');
    await next.getByRole('button', { name: 'Continue' }).click();
    await next.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();

    // Removing it takes the password and a code; this step's code was just spent, so a recovery code.
    await next.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account', exact: true }).click();
    await next.getByRole('button', { name: 'Remove authenticator app' }).click();
    const removal = next.getByRole('form', { name: 'Remove the authenticator app' });
    await removal.getByLabel('Current password').fill('not-the-password');
    await removal.getByLabel('Authentication or recovery code').fill(recoveryCodes[0]?.trim() ?? '');
    await removal.getByRole('button', { name: 'Remove', exact: true }).click();
    await removal.getByText('the current password is wrong').waitFor();
    await removal.getByLabel('Current password').fill(local.password);
    await removal.getByRole('button', { name: 'Remove', exact: true }).click();
    await next.getByText(/Authenticator app removed/).waitFor();
    await next.getByText('Off.', { exact: true }).waitFor();
    await screenshot(next, ARTIFACTS, '06b-totp-removed');
    const removed = await db.forSystem().query<{ outcome: string }>("SELECT outcome FROM audit_events WHERE action = 'totp-remove' ORDER BY id");
    expect(removed.map((row) => row.outcome)).toEqual(['denied', 'success']);
    await next.context().close();
  });

  it('[identity:mfa] registers a passkey with Chromium\'s virtual authenticator and signs in with it', async () => {
    // WebAuthn takes a domain, never an IP address, as the relying party: the console is opened as localhost.
    const origin = base.replace('127.0.0.1', 'localhost');
    const page = await openPage();
    const devtools = await page.context().newCDPSession(page);
    await devtools.send('WebAuthn.enable');
    const { authenticatorId } = await devtools.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    const signInWithPassword = async () => {
      await page.goto(`${origin}/`);
      await page.getByLabel('Tenant').fill(TENANT);
      await page.getByLabel('Email').fill(passkeyUser.email);
      await page.getByLabel('Password').fill(passkeyUser.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
    };
    await signInWithPassword();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByText('Passkey added').waitFor();
    await page.getByTestId('passkey-count').getByText('1 passkey registered.').waitFor();
    await screenshot(page, ARTIFACTS, '07-passkey-registered');
    const { credentials } = await devtools.send('WebAuthn.getCredentials', { authenticatorId });
    expect(credentials).toHaveLength(1);
    const [stored] = await db.forSystem().query<{ id: string; counter: string }>('SELECT w.id, w.counter::text FROM webauthn_credentials w JOIN admin_users u ON u.id = w.user_id WHERE u.email = $1', [passkeyUser.email]);
    expect(stored?.id).toBe(Buffer.from(credentials[0]?.credentialId ?? '', 'base64').toString('base64url'));

    // Signed out, the password now leads to the second step, which the passkey completes.
    await page.context().clearCookies();
    await signInWithPassword();
    await page.getByRole('heading', { name: 'Enter your authentication code' }).waitFor();
    await screenshot(page, ARTIFACTS, '08-passkey-prompt');
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await screenshot(page, ARTIFACTS, '09-signed-in-with-passkey');
    const [login] = await db.forSystem().query<{ meta: { steps: string[] } }>("SELECT meta FROM audit_events WHERE action = 'login' AND target = $1 ORDER BY id DESC LIMIT 1", [passkeyUser.email]);
    expect(login?.meta.steps).toEqual(['second-factor', 'passkey']);

    // Removed from the Account page with the password; the next sign-in needs the password only.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('list', { name: 'Your passkeys' }).waitFor();
    await page.getByRole('button', { name: 'Remove passkey 1' }).click();
    const removal = page.getByRole('form', { name: 'Remove the passkey' });
    await removal.getByLabel('Current password').fill(passkeyUser.password);
    await screenshot(page, ARTIFACTS, '09b-passkey-removal');
    await removal.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.getByTestId('passkey-count').getByText('No passkeys yet.').waitFor();
    const [left] = await db.forSystem().query<{ n: number }>('SELECT count(*)::int AS n FROM webauthn_credentials w JOIN admin_users u ON u.id = w.user_id WHERE u.email = $1', [passkeyUser.email]);
    expect(left?.n).toBe(0);
    const [audited] = await db.forSystem().query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'passkey-remove' AND outcome = 'success' AND target = $1", [passkeyUser.email]);
    expect(audited?.n).toBe(1);
    await page.context().clearCookies();
    await signInWithPassword();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.context().close();
  });
});
