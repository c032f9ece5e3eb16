/**
 * The console in headless Chromium against the whole system: control plane on PostgreSQL serving
 * the built console, OpenSSH, a real agent, gpg's recipient key. An owner signs in, enrolls an
 * agent with the wizard's command, grants its scopes, creates an integration, runs it, watches it
 * succeed and finds its audit trail; an auditor then finds no edit control, and the server refuses
 * the edit anyway. Every page is checked with axe-core and photographed (test/artifacts/console).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKey } from 'openpgp';
import pg from 'pg';
import YAML from 'yaml';
import type { Browser, Page } from 'playwright-core';
import { createTestDatabase } from '@airlock/testing';
import agentPackage from '@airlock/agent/package.json' with { type: 'json' };
import { type AxeViolation, launchChromium, screenshot, seriousViolations } from '../src/browser.ts';
import { buildConsole } from '../src/console-build.ts';
import { type AirlockSystem, CREDENTIAL_REF, REPO_ROOT, startSystem } from '../src/system.ts';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts/console');
const UI_TIMEOUT_MS = 15_000;
const RUN_TIMEOUT_MS = 90_000;
const INTEGRATION = 'console-e2e';

/**
 * The wizard's command as argv, accepting only words that need no shell quoting: anything else
 * means the shown text is not the plain command this test expects, and it is refused, not run.
 */
function parseShownCommand(text: string): string[] {
  const line = text.trim();
  if (!/^[A-Za-z0-9_@%+=:,./ -]+$/.test(line)) throw new Error('the shown command has characters a shell would interpret');
  return line.split(/ +/);
}

function formatFingerprint(fingerprint: string): string {
  return fingerprint.replace(/(.{4})(?=.)/g, '$1 ');
}

describe('console in Chromium: owner flow and auditor limits', () => {
  let system: AirlockSystem;
  let browser: Browser;
  let consoleDir: string;
  let databaseUrl: string;
  let integrationId = '';
  let agentPid: number | undefined;
  const owner = { email: 'owner@example.test', role: 'owner' as const, password: randomBytes(18).toString('base64url') };
  const auditor = { email: 'auditor@example.test', role: 'auditor' as const, password: randomBytes(18).toString('base64url') };
  const violations = new Map<string, AxeViolation[]>();
  const cspErrors: string[] = [];

  beforeAll(async () => {
    consoleDir = await mkdtemp(path.join(tmpdir(), 'airlock-console-'));
    [databaseUrl] = await Promise.all([createTestDatabase(inject('postgresUrl')), buildConsole(consoleDir)]);
    system = await startSystem({
      databaseUrl,
      consoleDir,
      enrollAgent: false,
      consoleUsers: [owner, auditor],
      files: { 'orders.csv': 'id,total\n1,10.00\n2,32.50\n', 'big.csv': randomBytes(3 * 1024 * 1024).toString('base64') },
    });
    browser = await launchChromium();
    console.log(`console screenshots: ${ARTIFACTS}`);
  });

  afterAll(async () => {
    await browser?.close();
    await system?.stop();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  async function openPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) cspErrors.push(message.text());
    });
    return page;
  }

  /** Screenshot and accessibility check of the page as it is now. */
  async function record(page: Page, name: string): Promise<void> {
    await screenshot(page, ARTIFACTS, name);
    violations.set(name, await seriousViolations(page));
  }

  async function signIn(page: Page, user: { email: string; password: string }): Promise<void> {
    const response = await page.goto(`${system.controlPlaneUrl}/`);
    const headers = response?.headers() ?? {};
    expect(headers['content-security-policy']).toContain("default-src 'self'");
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');
    await page.getByLabel('Tenant').fill('demo');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  }

  async function go(page: Page, label: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: label }).waitFor();
  }

  it('has an accessibility check that finds a planted violation', async () => {
    const page = await openPage();
    await page.setContent('<!doctype html><html lang="en"><head><title>probe</title></head><body><main><img src="data:,"><input type="text"></main></body></html>');
    const found = (await seriousViolations(page)).map((violation) => violation.id).sort();
    expect(found).toEqual(expect.arrayContaining(['image-alt', 'label']));
    await page.context().close();
  });

  it('signs in, enrolls through the wizard, creates and runs an integration, and finds its audit trail', async () => {
    const page = await openPage();
    await page.goto(`${system.controlPlaneUrl}/`);
    await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
    await record(page, '01-login');

    // 1. Log in.
    await signIn(page, owner);
    await record(page, '02-overview');

    // 2. Enroll an agent through the wizard and run the command it shows.
    await go(page, 'Agents');
    await page.getByText('No agents yet').waitFor();
    await page.getByRole('button', { name: 'Enroll an agent' }).click();
    await page.getByLabel('Token lifetime').selectOption('15');
    await page.getByRole('button', { name: 'Create token' }).click();
    const shown = await page.getByTestId('enroll-command').innerText();
    await page.getByText(/min \d\d s left/).waitFor();
    await record(page, '03-enroll-wizard');
    const argv = parseShownCommand(shown);
    expect(argv.slice(0, 3)).toEqual(['airlock-agent', 'enroll', '--url']);
    expect(argv[3]).toBe(system.controlPlaneUrl);
    expect(argv[5]).toMatch(/^aet_/);
    const agentId = await system.enrollWithCommand(argv);
    await page.getByRole('button', { name: 'Done' }).click();
    agentPid = system.startAgent().pid;
    // The daemon's first heartbeat marks it online; the list refreshes on its own.
    await page.getByRole('row').filter({ hasText: agentId }).getByText('online').waitFor({ timeout: 30_000 });
    await record(page, '04-agents');

    // Scopes: grant exactly what the integration needs, through the console.
    const sftp = system.sftp;
    if (!sftp) throw new Error('no SFTP server');
    const sourcePath = `${sftp.exportsPath}/*.csv`;
    await go(page, 'Scopes');
    for (const scope of [`read sftp://${sftp.host}:${sftp.port}${sourcePath}`, `write file://${system.deliveredDir}/**`]) {
      await page.getByLabel('Agent or group').selectOption(`agent:${agentId}`);
      await page.getByLabel('Scope', { exact: true }).fill(scope);
      await page.getByRole('button', { name: 'Add grant' }).click();
      await page.getByRole('cell', { name: scope, exact: true }).waitFor();
    }
    await record(page, '05-scopes');

    // 3. Create an integration; the empty form is refused inline first.
    await go(page, 'Integrations');
    await page.getByRole('button', { name: 'New integration' }).click();
    await page.getByRole('button', { name: 'Save integration' }).click();
    await page.getByText('Fix the fields marked below.').waitFor();
    await page.getByText('Choose the agent that runs this integration.').waitFor();
    await page.getByText('Add at least one recipient key.').waitFor();
    await page.getByLabel('Name').fill(INTEGRATION);
    await page.getByLabel('Agent', { exact: true }).selectOption(agentId);
    const source = page.getByRole('group', { name: 'Source' });
    await source.getByLabel('Source connector').selectOption('sftp@1');
    await source.getByLabel('Host', { exact: true }).fill(sftp.host);
    await source.getByLabel('Port (optional)').fill(String(sftp.port));
    await source.getByLabel('Host key', { exact: true }).fill('not-a-fingerprint');
    await source.getByLabel('Username').fill(sftp.username);
    await source.getByLabel('Credential ref').fill(CREDENTIAL_REF);
    await source.getByLabel('Path', { exact: true }).fill(sourcePath);
    const destination = page.getByRole('group', { name: 'Destination' });
    await destination.getByLabel('Destination connector').selectOption('local@1');
    await destination.getByLabel('Directory', { exact: true }).fill(system.deliveredDir);
    await page.getByLabel('Paste an armored public key').fill(await readFile(system.recipientPublicKeyFile, 'utf8'));
    await page.getByRole('button', { name: 'Check and add key' }).click();
    await page.getByText(formatFingerprint(system.recipientFingerprint)).waitFor();
    // The connector's schema rejects the host key inline, next to the field.
    await page.getByRole('button', { name: 'Save integration' }).click();
    await source.getByText(/Does not match the expected format/).waitFor();
    await source.getByLabel('Host key', { exact: true }).fill(sftp.hostKeyFingerprint);
    await record(page, '06-integration-form');
    await page.getByRole('button', { name: 'Save integration' }).click();
    await page.getByText(`Saved ${INTEGRATION} as version 1.`).waitFor();
    await record(page, '07-integrations');

    // 4. Run it.
    await page.getByRole('button', { name: `Run ${INTEGRATION} now` }).click();
    const watch = page.getByRole('link', { name: /^Watch run / });
    await watch.waitFor();

    // 5. Watch it succeed, with its receipt.
    await watch.click();
    await page.getByRole('heading', { level: 1, name: 'Runs' }).waitFor();
    const detail = page.getByRole('region', { name: /^Run / });
    await detail.getByText('succeeded', { exact: true }).waitFor({ timeout: RUN_TIMEOUT_MS });
    await detail.getByRole('heading', { name: 'Receipt' }).waitFor();
    const receipt = await detail.innerText();
    expect(receipt).toContain(formatFingerprint(system.recipientFingerprint));
    const runId = new URL(page.url()).searchParams.get('run') ?? '';
    expect(runId).toMatch(/^[0-9a-f-]{36}$/);
    const run = await system.showRun(runId);
    expect(run.status).toBe('succeeded');
    // The receipt shows each file's ciphertext hash and keyed plaintext digest; the plaintext's own SHA-256 never reaches the cloud.
    expect(run.report?.files.length).toBe(system.sources.length);
    for (const file of run.report?.files ?? []) {
      expect(receipt).toContain(file.ciphertextSha256);
      expect(receipt).toContain(file.plaintextHmac);
    }
    for (const file of system.sources) expect(receipt).not.toContain(file.sha256);
    integrationId = run.integrationId;
    // The agent reported live progress while the run was in flight: counters only, the last one kept.
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ progress: Record<string, unknown> | null }>('SELECT progress FROM runs WHERE id = $1', [runId]);
      expect(rows[0]?.progress).toMatchObject({ filesTotal: 2 });
      expect(Object.keys(rows[0]?.progress ?? {}).sort()).toEqual(['bytesIn', 'bytesOut', 'filesDone', 'filesTotal']);
    } finally {
      await client.end();
    }
    await record(page, '08-runs');

    // 6. Find its audit events, and verify the chain.
    await go(page, 'Audit');
    await page.getByLabel('Target').fill(runId);
    await page.getByRole('button', { name: 'Apply filters' }).click();
    for (const action of ['run-request', 'run-dispatch', 'run-complete']) {
      await page.getByRole('cell', { name: action, exact: true }).waitFor();
    }
    await page.getByRole('button', { name: 'Verify the chain now' }).click();
    await page.getByText(/^Verified: the chain holds from genesis/).waitFor({ timeout: 30_000 });
    await record(page, '09-audit');

    await go(page, 'API keys');
    await page.getByRole('rowheader', { name: 'bootstrap', exact: true }).waitFor();
    await record(page, '10-api-keys');
    await go(page, 'Users');
    await page.getByRole('rowheader', { name: auditor.email }).waitFor();
    await record(page, '10-users');
    await go(page, 'Overview');
    await page.getByRole('img', { name: /Ciphertext bytes delivered per hour/ }).waitFor();
    await record(page, '11-overview-after-run');
    await page.context().close();
  });

  it('7. an auditor sees no edit controls, and the server refuses an edit anyway', async () => {
    expect(integrationId).not.toBe('');
    const page = await openPage();
    await signIn(page, auditor);
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Audit' }).waitFor();
    expect(await nav.getByRole('link', { name: 'API keys' }).count()).toBe(0);

    await go(page, 'Integrations');
    await page.getByRole('rowheader', { name: INTEGRATION }).waitFor();
    expect(await page.getByRole('button', { name: 'New integration' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Edit / }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Run .* now$/ }).count()).toBe(0);
    await record(page, '12-auditor-integrations');

    await go(page, 'Agents');
    await page.getByText('online').first().waitFor();
    // Each agent's version as its heartbeat reported it: the agent package's version.
    await page.getByRole('cell', { name: agentPackage.version, exact: true }).first().waitFor();
    expect(await page.getByRole('button', { name: 'Enroll an agent' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Revoke / }).count()).toBe(0);

    // The same session, with its valid CSRF token, calling the edits directly: refused by role.
    const statuses = await page.evaluate(async (id) => {
      const me = (await (await fetch('/trpc/session.me')).json()) as { result: { data: { csrfToken: string } } };
      const headers = { 'content-type': 'application/json', 'x-airlock-csrf': me.result.data.csrfToken };
      const call = (procedure: string, input: unknown) => fetch(`/trpc/${procedure}`, { method: 'POST', headers, body: JSON.stringify(input) }).then((r) => r.status);
      return { runNow: await call('integrations.runNow', { id }), createToken: await call('enrollment.createToken', { ttlMinutes: 5 }) };
    }, integrationId);
    expect(statuses).toEqual({ runNow: 403, createToken: 403 });
    await page.context().close();

    const denied = (await system.listAudit()).filter((event) => event.action === 'permission-denied');
    expect(denied.map((event) => event.target).sort()).toEqual(['enrollment.createToken', 'integrations.runNow']);
  });

  it('8. the run page says why a run failed, in words the agent vouched for', async () => {
    expect(integrationId).not.toBe('');
    // The credential the integration names leaves secrets.yaml; the daemon reloads on SIGHUP.
    const secrets = YAML.parse(await readFile(system.secretsFile, 'utf8')) as Record<string, unknown>;
    await writeFile(system.secretsFile, YAML.stringify({ 'retired-sftp': secrets[CREDENTIAL_REF] }), { mode: 0o600 });
    if (agentPid === undefined) throw new Error('no agent daemon');
    process.kill(agentPid, 'SIGHUP');
    const expected = `credential "${CREDENTIAL_REF}" is not in secrets.yaml`;

    const page = await openPage();
    await signIn(page, owner);
    await go(page, 'Integrations');
    await page.getByRole('button', { name: `Run ${INTEGRATION} now` }).click();
    await page.getByRole('link', { name: /^Watch run / }).click();
    const detail = page.getByRole('region', { name: /^Run / });
    await detail.getByText('failed', { exact: true }).waitFor({ timeout: RUN_TIMEOUT_MS });
    expect(await detail.getByTestId('run-reason').innerText()).toBe(expected);
    await record(page, '13-failed-run');
    const runId = new URL(page.url()).searchParams.get('run') ?? '';
    await page.context().close();

    // `airlock run show` says the same.
    const shown = (await system.airlockJson(['run', 'show', runId])) as { status: string; reason: string | null };
    expect(shown).toMatchObject({ status: 'failed', reason: expected });
  });

  it('9. operators manage alert destinations and enrollment tokens, and read each agent\'s version, proxy use and last error', async () => {
    // The console's own routes are its page; a path that is neither API nor console is 404.
    for (const route of ['/alert-destinations', '/enrollment-tokens', '/agents']) {
      const response = await fetch(`${system.controlPlaneUrl}${route}`);
      expect(response.status, route).toBe(200);
      expect(await response.text(), route).toContain('<div id="root">');
    }
    for (const other of ['/metrics', '/readyz/extra', '/no-such-page']) expect((await fetch(`${system.controlPlaneUrl}${other}`)).status, other).toBe(404);

    const page = await openPage();
    await signIn(page, owner);
    await go(page, 'Agents');
    const row = page.getByRole('row', { name: new RegExp(agentPackage.version.replace(/\./g, '\\.')) });
    // Columns after the host: status, last heartbeat, version, proxy, last error, groups, enrolled.
    await row.getByRole('cell', { name: 'direct', exact: true }).waitFor();
    expect(await row.getByRole('cell').nth(2).innerText()).toBe(agentPackage.version);
    // The last error the agent's heartbeat carried: none yet, step 8's run failure, or a failed call.
    const lastError = await row.getByRole('cell').nth(4).innerText();
    expect([`credential "${CREDENTIAL_REF}" is not in secrets.yaml`, 'none'].includes(lastError) || /failed|refused/.test(lastError), lastError).toBe(true);
    await record(page, '20-agents-summary');

    await go(page, 'Agent groups');
    await page.getByText('No agent groups').waitFor();
    await page.getByLabel('Group name').fill('night-shift');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByText('Group night-shift created.').waitFor();
    const group = page.getByRole('region', { name: 'Group night-shift' });
    await group.getByText('No members yet.').waitFor();
    await group.getByLabel('Agent to add to night-shift').selectOption({ index: 1 });
    await group.getByRole('button', { name: 'Add to night-shift' }).click();
    await group.getByText('healthy', { exact: true }).waitFor();
    await group.getByText('1 of 1 member(s) healthy', { exact: false }).waitFor();
    await record(page, '23-agent-groups');
    await group.getByRole('button', { name: /^Remove .+ from night-shift$/ }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove from group' }).click();
    await page.getByText("Agent removed from night-shift: the group's grants no longer apply to it.").waitFor();
    await group.getByText('No members yet.').waitFor();
    await group.getByText('0 of 0 member(s) healthy', { exact: false }).waitFor();
    const removal = (await system.listAudit()).find((event) => event.action === 'group-remove-agent');
    expect(removal).toMatchObject({ outcome: 'success' });

    const created = await system.airlockJson(['token', 'create']);
    expect(created).toMatchObject({ token: expect.stringMatching(/^aet_/) });
    await go(page, 'Enrollment tokens');
    await page.getByText('usable', { exact: true }).waitFor();
    await expect(page.getByText('used', { exact: true }).count()).resolves.toBeGreaterThanOrEqual(1);
    await record(page, '21-enrollment-tokens');
    await page.getByRole('button', { name: 'Revoke token' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click();
    await page.getByText('Token revoked: it can no longer enroll an agent.').waitFor();
    await page.getByText('revoked', { exact: true }).waitFor();
    expect((await system.listAudit()).some((event) => event.action === 'enrollment-token-revoke')).toBe(true);

    await go(page, 'Alert destinations');
    await page.getByText('No alert destinations').waitFor();
    await page.getByLabel('Name').fill('ops-pager');
    await page.getByLabel('Webhook URL').fill('https://hooks.example.test/airlock/alerts');
    await page.getByLabel('Lowest severity sent').selectOption('critical');
    await page.getByRole('button', { name: 'Add destination' }).click();
    await page.getByText(/Signing secret of ops-pager, shown this once/).waitFor();
    const destination = page.getByRole('row', { name: /ops-pager/ });
    await destination.getByRole('cell', { name: 'https://hooks.example.test' }).waitFor();
    await destination.getByText('enabled', { exact: true }).waitFor();
    await record(page, '22-alert-destinations');
    await destination.getByRole('button', { name: 'Disable ops-pager' }).click();
    await destination.getByText('disabled', { exact: true }).waitFor();
    await destination.getByRole('button', { name: 'Delete ops-pager' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete destination' }).click();
    await page.getByText('No alert destinations').waitFor();
    const actions = (await system.listAudit()).map((event) => event.action);
    for (const action of ['alert-destination-create', 'alert-destination-update', 'alert-destination-delete']) expect(actions, action).toContain(action);
    await page.context().close();
  });

  it('10. the edit form names a saved recipient key that has expired since, and keeps the current one', async () => {
    expect(integrationId).not.toBe('');
    // A key that expired a day ago: saving it would be refused, so it is put beside the current one in the database.
    const { publicKey: expired } = await generateKey({
      userIDs: [{ name: 'Former partner', email: 'former@example.test' }],
      date: new Date(Date.now() - 2 * 86_400_000),
      keyExpirationTime: 86_400,
      format: 'armored',
    });
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query("UPDATE integrations SET spec = jsonb_set(spec, '{recipients}', (spec->'recipients') || to_jsonb($1::text)) WHERE id = $2", [expired, integrationId]);
    try {
      const page = await openPage();
      await signIn(page, owner);
      await go(page, 'Integrations');
      await page.getByRole('button', { name: `Edit ${INTEGRATION}` }).click();
      const notice = page.getByRole('alert').filter({ hasText: 'A saved recipient key no longer passes' });
      await notice.getByText(/^recipient key [0-9A-F]{40}: expired on \d{4}-/).waitFor();
      await page.getByText(formatFingerprint(system.recipientFingerprint)).waitFor();
      await record(page, '24-integration-expired-key');
      await page.getByRole('button', { name: 'Cancel' }).click();
      await page.context().close();
    } finally {
      await client.query("UPDATE integrations SET spec = jsonb_set(spec, '{recipients}', (spec->'recipients') - $1::text) WHERE id = $2", [expired, integrationId]);
      await client.end();
    }
  });

  it('has no serious accessibility violation on any page and no CSP refusal', () => {
    expect(violations.size).toBeGreaterThanOrEqual(13);
    for (const [name, found] of violations) expect(found, name).toEqual([]);
    expect(cspErrors).toEqual([]);
  });
});
