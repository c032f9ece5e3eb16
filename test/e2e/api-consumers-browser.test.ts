/**
 * The console's API-consumer pages in headless Chromium: an admin creates an OAuth client (its
 * secret shown once, then gone), rotates, disables and deletes it, each step checked at the real
 * token endpoint; and the API request log is filtered, narrowed to a time range and exported as CSV
 * and JSON Lines, the downloads read back. Screenshots land in test/artifacts/identity.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
  generateTokenKeyPem,
  migrate,
  RequestLogWriter,
  secretBoxFromKey,
  signerFromSecretKey,
  tokenKeysFromPems,
} from '@airlock/api';
import { generateKeyPair } from '@airlock/identity';
import { createTestDatabase } from '@airlock/testing';
import { launchChromium, screenshot } from '../src/browser.ts';
import { buildConsole } from '../src/console-build.ts';
import { REPO_ROOT } from '../src/system.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts/identity');
const UI_TIMEOUT_MS = 15_000;
const TENANT = 'acme';
const FAST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };

describe('API consumers in Chromium', () => {
  let db: Database;
  let server: Server;
  let base: string;
  let browser: Browser;
  let consoleDir: string;
  let requestLog: RequestLogWriter;
  let apiKey = '';
  const admin = { email: 'ada@acme.test', password: randomBytes(18).toString('base64url') };

  beforeAll(async () => {
    consoleDir = await mkdtemp(path.join(tmpdir(), 'airlock-consumers-console-'));
    const [databaseUrl] = await Promise.all([createTestDatabase(inject('postgresUrl')), buildConsole(consoleDir)]);
    db = connectPostgres(databaseUrl, { maxConnections: 10 });
    await migrate(db);
    ({ key: apiKey } = await bootstrapTenant(db, { tenant: TENANT, keyName: 'first', expiresInDays: 30 }));
    await createAdminUserInTenant(db, { tenant: TENANT, email: admin.email, role: 'admin', password: admin.password }, { scrypt: FAST_SCRYPT });
    const logger = { warn: () => undefined, error: () => undefined };
    requestLog = new RequestLogWriter(db, logger, { flushMs: 100 });
    const handler = createHttpHandler(
      {
        db,
        dispatcher: new Dispatcher(50),
        now: () => new Date(),
        logger,
        signer: signerFromSecretKey(generateKeyPair().secretKey),
        alerts: { secretBox: secretBoxFromKey(randomBytes(32)), webhook: { timeoutMs: 2_000, allowLoopback: true } },
        auth: { scrypt: FAST_SCRYPT },
        oauth: { issuer: 'https://airlock.consumers.test', keys: await tokenKeysFromPems(generateTokenKeyPem()) },
      },
      { maxBodyBytes: 256 * 1024, console: await createStaticHandler(consoleDir), requestLog },
    );
    server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
    await requestLog?.close();
    await db?.close();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  async function signedIn(to: string): Promise<Page> {
    // UTC, so the time-range fields (local time in the browser) read as the instants the test means.
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, timezoneId: 'UTC', acceptDownloads: true });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.getByLabel('Tenant').fill(TENANT);
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: to, exact: true }).click();
    return page;
  }

  async function token(clientId: string, secret: string, userAgent = 'erp-sync/2'): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${base}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'user-agent': userAgent },
      body: 'grant_type=client_credentials',
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function confirm(page: Page, button: string, action: string): Promise<void> {
    await page.getByRole('button', { name: button, exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: action, exact: true }).click();
  }

  it('[identity:oauth] creates a client whose secret is shown once, then rotates, disables and deletes it', async () => {
    const page = await signedIn('OAuth clients');
    await page.getByRole('heading', { level: 1, name: 'OAuth clients' }).waitFor();
    const form = page.getByRole('form', { name: 'Create an OAuth client' });
    await form.getByLabel('Name').fill('erp-sync');
    await form.getByLabel('Role').selectOption('operator');
    await form.getByRole('button', { name: 'Create client' }).click();
    const shown = page.getByRole('status').filter({ hasText: 'Client credentials' });
    await shown.waitFor();
    const clientId = ((await shown.locator('p code').first().innerText()) ?? '').trim();
    const secret = (await shown.locator('pre code').innerText()).trim();
    expect(clientId).not.toBe('');
    expect(secret).toMatch(/^alcs_/);
    await screenshot(page, ARTIFACTS, '10-oauth-client-secret-shown-once');
    expect((await token(clientId, secret)).status).toBe(200);

    // Once dismissed, the secret is nowhere: not on the page, not after a reload, not in the list's answer.
    await shown.getByRole('button', { name: 'Done' }).click();
    await shown.waitFor({ state: 'detached' });
    await page.reload();
    await page.getByRole('row', { name: /erp-sync/ }).waitFor();
    expect(await page.content()).not.toContain(secret);
    const listed = await fetch(`${base}/trpc/oauthClients.list`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(await listed.text()).not.toContain(secret);

    await confirm(page, 'Rotate erp-sync', 'Rotate secret');
    const rotatedPanel = page.getByRole('status').filter({ hasText: 'Client credentials' });
    await rotatedPanel.waitFor();
    const rotated = (await rotatedPanel.locator('pre code').innerText()).trim();
    expect(rotated).toMatch(/^alcs_/);
    expect(rotated).not.toBe(secret);
    await screenshot(page, ARTIFACTS, '11-oauth-client-rotated');
    expect((await token(clientId, secret)).status).toBe(401);
    expect((await token(clientId, rotated)).status).toBe(200);
    await rotatedPanel.getByRole('button', { name: 'Done' }).click();

    await confirm(page, 'Disable erp-sync', 'Disable client');
    await page.getByText('Client disabled: its tokens stopped working.').waitFor();
    await page.getByRole('row', { name: /erp-sync/ }).getByText('disabled', { exact: true }).waitFor();
    await screenshot(page, ARTIFACTS, '12-oauth-client-disabled');
    expect((await token(clientId, rotated)).body['error']).toBe('invalid_client');

    await confirm(page, 'Delete erp-sync', 'Delete client');
    await page.getByText('No OAuth clients').waitFor();
    await screenshot(page, ARTIFACTS, '13-oauth-client-deleted');
    expect((await token(clientId, rotated)).status).toBe(401);

    const audit = await db.forSystem().query<{ action: string; actor_type: string }>(
      "SELECT action, actor_type FROM audit_events WHERE action LIKE 'oauth-client-%' AND action <> 'oauth-client-token' ORDER BY seq",
    );
    expect(audit.filter((row) => row.actor_type === 'admin').map((row) => row.action)).toEqual(['oauth-client-create', 'oauth-client-rotate', 'oauth-client-disable', 'oauth-client-delete']);
    await page.context().close();
  });

  it('[identity:oauth] filters the request log, narrows it to a time range and exports it as CSV and JSONL', async () => {
    // Traffic of two kinds of caller: an OAuth client's calls (one refused) and an API key's.
    const created = await fetch(`${base}/trpc/oauthClients.create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
      body: JSON.stringify({ name: 'reports', role: 'auditor', authMethod: 'client_secret_basic', readOnly: true }),
    });
    expect(created.status, await created.clone().text()).toBe(200);
    const client = ((await created.json()) as { result: { data: { id: string; clientId: string; clientSecret: string } } }).result.data;
    const issued = await token(client.clientId, client.clientSecret, 'reports-bot/1');
    expect(issued.status).toBe(200);
    const access = String(issued.body['access_token']);
    for (const procedure of ['agents.list', 'agents.list', 'integrations.list']) {
      const reply = await fetch(`${base}/trpc/${procedure}`, { headers: { authorization: `Bearer ${access}`, 'user-agent': 'reports-bot/1' } });
      expect(reply.status, await reply.clone().text()).toBe(200);
    }
    const refused = await fetch(`${base}/trpc/enrollment.createToken`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${access}`, 'user-agent': 'reports-bot/1' },
      body: JSON.stringify({ ttlMinutes: 5 }),
    });
    expect(refused.status).toBe(403);
    await fetch(`${base}/trpc/agents.list`, { headers: { authorization: `Bearer ${apiKey}`, 'user-agent': 'ops-script/3' } });
    // A request two days old, outside the time range the test picks below.
    const [tenant] = await db.forSystem().query<{ id: string }>('SELECT id FROM tenants WHERE name = $1', [TENANT]);
    await db.forSystem().query(
      `INSERT INTO request_log (at, tenant_id, caller_type, caller_id, procedure, method, status, outcome, latency_ms, source_ip, user_agent, request_id)
       VALUES (now() - interval '2 days', $1, 'oauth-client', $2, 'agents.list', 'GET', 200, 'OK', 3, '127.0.0.1', 'old-bot/0', gen_random_uuid())`,
      [tenant?.id, client.id],
    );
    await requestLog.flush();

    const page = await signedIn('API requests');
    await page.getByRole('heading', { level: 1, name: 'API requests' }).waitFor();
    const table = page.getByRole('table', { name: 'API requests' });
    await table.getByText('old-bot/0').waitFor();
    await table.getByText('ops-script/3').first().waitFor();

    const filters = page.getByRole('form', { name: 'Filter requests' });
    await filters.getByLabel('Caller type').selectOption('oauth-client');
    await filters.getByLabel('Caller id').fill(client.id);
    await filters.getByRole('button', { name: 'Apply' }).click();
    await table.getByText('ops-script/3').waitFor({ state: 'detached' });
    // The client's three calls, its refusal and the old row; its token request too, logged under its client.
    const callerCells = table.locator('tbody tr td:nth-child(2)');
    await expect.poll(async () => (await callerCells.allInnerTexts()).every((text) => text.startsWith('oauth-client'))).toBe(true);
    await table.getByText('old-bot/0').waitFor();
    await screenshot(page, ARTIFACTS, '14-request-log-filtered');

    // The last hour only: the two-day-old request drops out.
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString().slice(0, 16);
    await filters.getByLabel('From').fill(hourAgo);
    await filters.getByLabel('Outcome').fill('error');
    await filters.getByRole('button', { name: 'Apply' }).click();
    await table.getByText('old-bot/0').waitFor({ state: 'detached' });
    await table.getByText('enrollment.createToken').waitFor();
    expect(await table.locator('tbody tr').count()).toBe(1);
    await screenshot(page, ARTIFACTS, '15-request-log-time-range');

    // Exports hold what the filter shows, and nothing of any credential.
    await filters.getByLabel('Outcome').fill('');
    await filters.getByRole('button', { name: 'Apply' }).click();
    await table.getByText('integrations.list').first().waitFor();
    const shownRows = await table.locator('tbody tr').count();
    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
    const csv = await readFile((await csvDownload.path()) ?? '', 'utf8');
    const csvLines = csv.trim().split(/\r?\n/);
    expect(csvLines[0]).toContain('procedure');
    expect(csvLines).toHaveLength(shownRows + 1);
    expect(csv).not.toContain('old-bot/0');
    expect(csv).toContain('enrollment.createToken');
    const [jsonlDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export JSONL' }).click()]);
    expect(jsonlDownload.suggestedFilename()).toMatch(/^airlock-requests-.*\.jsonl$/);
    const jsonl = (await readFile((await jsonlDownload.path()) ?? '', 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { callerType: string; callerId: string; procedure: string; at: string });
    expect(jsonl).toHaveLength(shownRows);
    expect(jsonl.every((row) => row.callerType === 'oauth-client' && row.callerId === client.id && Date.parse(row.at) >= Date.parse(`${hourAgo}:00Z`))).toBe(true);
    expect(jsonl.filter((row) => row.procedure === 'agents.list')).toHaveLength(2);
    for (const text of [csv, JSON.stringify(jsonl)]) {
      expect(text).not.toContain(client.clientSecret);
      expect(text).not.toContain(access);
      expect(text).not.toContain(apiKey);
    }
    await page.getByText(`Exported ${shownRows} requests.`).waitFor();
    await screenshot(page, ARTIFACTS, '16-request-log-exported');
    await page.context().close();
  });
});
