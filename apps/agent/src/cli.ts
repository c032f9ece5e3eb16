/** `airlock-agent`: enroll this host, run jobs, and show status. */
import os from 'node:os';
import { Command, Option } from 'commander';
import path from 'node:path';
import { EXIT_REFUSED, forPerson, formatIssues, personErrorJson, PolicyViolationError, type SchemaIssue, UserError } from '@airlock/errors';
import type { ProxySettings } from './egress.ts';
import packageJson from '../package.json' with { type: 'json' };

// Each command imports what it uses when it runs (ssh2, OpenPGP, the tRPC client, pino), so
// `airlock-agent --help` and `--version` load none of them.

interface CommonOptions {
  dir?: string;
  policy?: string;
  secrets?: string;
  json?: boolean;
}

function print(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
}

function common(command: Command): Command {
  return command
    .option('--dir <path>', 'agent data directory (default $AIRLOCK_AGENT_DIR or ./.airlock/agent)')
    .option('--policy <file>', 'local policy file (default <dir>/policy.yaml)')
    .option('--secrets <file>', 'local secrets file (default <dir>/secrets.yaml)')
    .addOption(new Option('--json', 'print JSON'));
}

/** Printed after `airlock-agent --help`; the README's "Exit status" says the same. */
export const EXIT_STATUS_HELP = `
Exit status: 0 ok, 1 failed, 2 usage (a wrong command line), 3 refused by policy or permission,
75 switched to another version (the unit restarts the agent on it).
With --json, a failure is one line of JSON on stderr: {"error": {"code": "...", "message": "..."}}.`;

/**
 * The program. With `jsonErrors`, commander's own complaints are left unprinted for `main` to
 * print as JSON; set before any command is added, since subcommands copy the output settings.
 */
/**
 * The key the server at `url` presents, refused (as a policy violation, recorded in the security
 * log) unless it is the pinned one.
 */
async function refuseUnpinnedServer(
  client: { controlPlane: { identity: { query: () => Promise<unknown> } } },
  url: string,
  pinned: string,
  dataDir: string,
  consequence: string,
): Promise<Uint8Array> {
  const { decodePublicKey, keyFingerprint } = await import('@airlock/identity');
  const { SecurityLog } = await import('./security-log.ts');
  const served: unknown = await client.controlPlane.identity.query();
  const servedText: unknown = typeof served === 'object' && served !== null ? Reflect.get(served, 'publicKey') : undefined;
  let servedKey: Uint8Array;
  try {
    servedKey = decodePublicKey(typeof servedText === 'string' ? servedText : '');
  } catch {
    servedKey = new Uint8Array();
  }
  if (servedKey.length === 0 || keyFingerprint(servedKey) !== pinned) {
    const reason = `${url} presents control-plane key ${servedKey.length === 0 ? '(none)' : keyFingerprint(servedKey)}, not the pinned ${pinned}`;
    await new SecurityLog(dataDir).record('control-plane-key-mismatch', reason);
    throw new PolicyViolationError(`${reason}; ${consequence}`);
  }
  return servedKey;
}

/** The control-plane URL and egress settings from agent.json, for `openEgress`. */
async function egressSettings(
  loadIdentity: (dataDir: string) => Promise<{ identity: { controlPlaneUrl: string; proxy?: ProxySettings | undefined; controlPlaneCaFile?: string | undefined } }>,
  dataDir: string,
): Promise<[string, { proxy?: ProxySettings | undefined; controlPlaneCaFile?: string | undefined }]> {
  const { identity } = await loadIdentity(dataDir);
  return [identity.controlPlaneUrl, identity];
}

/** A flag's value checked with its schema; the problem names the flag, never the value. */
function parseOrRefuse<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: readonly SchemaIssue[] } } }, value: unknown, flag: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new UserError(`${flag}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

/** `version`: the version this build reports and updates from; the package's unless the build says otherwise. */
export function buildProgram(options: { jsonErrors?: boolean; version?: string } = {}): Command {
  const version = options.version ?? packageJson.version;
  const program = new Command('airlock-agent').description('Airlock agent: pulls, encrypts and delivers files; connects outward only').version(version).exitOverride();
  if (options.jsonErrors) program.configureOutput({ outputError: () => undefined, writeErr: () => undefined });
  else program.showHelpAfterError();
  program.addHelpText('after', EXIT_STATUS_HELP);

  common(program.command('enroll'))
    .description('create this agent\'s Ed25519 key (kept here, mode 0600) and redeem a one-time enrollment token')
    .requiredOption('--url <url>', 'control plane URL, e.g. https://airlock.example.com')
    .option('--token <token>', 'one-time enrollment token (or set AIRLOCK_ENROLL_TOKEN)')
    .requiredOption('--control-plane-key <fingerprint>', "the control plane's signing key, ed25519:<base64url SHA-256>, as `airlock token create` prints it")
    .option('--proxy <url>', 'HTTP proxy for the control plane, kept in agent.json (default: HTTPS_PROXY, HTTP_PROXY, NO_PROXY as curl reads them)')
    .option('--proxy-bypass <hosts>', 'with --proxy: hosts reached directly, as NO_PROXY lists them')
    .option('--proxy-credential <name>', "with --proxy: the secrets.yaml entry holding the proxy's username and password")
    .option('--ca-file <pem>', "extra CA certificates for the control plane's TLS (an intercepting proxy's CA), kept in agent.json")
    .action(async (options: CommonOptions & { url: string; token?: string; controlPlaneKey: string; proxy?: string; proxyBypass?: string; proxyCredential?: string; caFile?: string }) => {
      const { encodeKey, isKeyFingerprint } = await import('@airlock/identity');
      const { loadAgentConfig } = await import('./config.ts');
      const { createEnrollmentClient, openEgress, reportedHostname } = await import('./control-channel.ts');
      const { proxySettingsSchema } = await import('./egress.ts');
      const { savePin } = await import('./control-plane-pin.ts');
      const { AGENT_VERSION } = await import('./daemon.ts');
      const { keyForEnrollment, saveIdentity } = await import('./identity-store.ts');
      const config = loadAgentConfig(options);
      const token = options.token ?? config.enrollToken;
      if (!token) throw new UserError('an enrollment token is required: --token or AIRLOCK_ENROLL_TOKEN');
      if (!isKeyFingerprint(options.controlPlaneKey)) throw new UserError('--control-plane-key: expected ed25519:<43 base64url characters>');
      const url = new URL(options.url).origin;
      if (options.proxy === undefined && (options.proxyBypass !== undefined || options.proxyCredential !== undefined)) {
        throw new UserError('--proxy-bypass and --proxy-credential go with --proxy');
      }
      const proxy =
        options.proxy === undefined
          ? undefined
          : parseOrRefuse(proxySettingsSchema, { https: options.proxy, http: options.proxy, noProxy: options.proxyBypass, credential: options.proxyCredential }, '--proxy');
      const egressSettings = { proxy, controlPlaneCaFile: options.caFile === undefined ? undefined : path.resolve(options.caFile) };
      const keyPair = await keyForEnrollment(config.dataDir);
      const egress = await openEgress(url, egressSettings, config);
      const result = await (async () => {
        const client = createEnrollmentClient(url, egress.fetch);
        // Checked before the token is redeemed: a server without the pinned key never sees the token.
        const servedKey = await refuseUnpinnedServer(client, url, options.controlPlaneKey, config.dataDir, 'the token was not used');
        await savePin(config.dataDir, servedKey);
        return client.enrollment.enroll.mutate({
          token,
          publicKey: encodeKey(keyPair.publicKey),
          hostname: reportedHostname(),
          version: AGENT_VERSION,
        });
      })().finally(() => egress.close());
      await saveIdentity(config.dataDir, {
        ...result,
        controlPlaneUrl: url,
        enrolledAt: new Date().toISOString(),
        ...(egressSettings.proxy === undefined ? {} : { proxy: egressSettings.proxy }),
        ...(egressSettings.controlPlaneCaFile === undefined ? {} : { controlPlaneCaFile: egressSettings.controlPlaneCaFile }),
      });
      print(options.json, { ...result, dataDir: config.dataDir }, () => `enrolled as agent ${result.agentId} (tenant ${result.tenantId}); identity in ${config.dataDir}`);
    });

  common(program.command('set-url'))
    .description('point this agent at a new control-plane URL; the server there must present the pinned control-plane key')
    .argument('<url>', 'the new control plane URL, e.g. https://airlock-2.example.com')
    .action(async (newUrl: string, options: CommonOptions) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { createEnrollmentClient, openEgress } = await import('./control-channel.ts');
      const { loadPin } = await import('./control-plane-pin.ts');
      const { loadIdentity, saveIdentity } = await import('./identity-store.ts');
      const config = loadAgentConfig(options);
      let url: string;
      try {
        url = new URL(newUrl).origin;
      } catch {
        throw new UserError(`${newUrl} is not a URL: expected e.g. https://airlock.example.com`);
      }
      const [{ identity }, pin] = await Promise.all([loadIdentity(config.dataDir), loadPin(config.dataDir)]);
      // A first refusal before anything changes. Trust itself stays with the pin: work, checkpoints
      // and rotations from the new URL are accepted only when signed by the pinned key.
      const egress = await openEgress(url, identity, config);
      await refuseUnpinnedServer(createEnrollmentClient(url, egress.fetch), url, pin.fingerprint, config.dataDir, 'the URL was not changed').finally(() => egress.close());
      await saveIdentity(config.dataDir, { ...identity, controlPlaneUrl: url });
      print(options.json, { agentId: identity.agentId, previousUrl: identity.controlPlaneUrl, controlPlaneUrl: url, controlPlaneKey: pin.fingerprint }, () =>
        `agent ${identity.agentId} now talks to ${url} (was ${identity.controlPlaneUrl}); restart the agent to use it`,
      );
    });

  common(program.command('run'))
    .description('poll the control plane for jobs and run them within the local policy')
    .option('--once', 'run one job, then exit (non-zero if it failed)')
    .option('--idle-timeout <seconds>', 'with --once: give up after waiting this long for a job', '120')
    .action(async (options: CommonOptions & { once?: boolean; idleTimeout: string }) => {
      const { pino } = await import('pino');
      const { loadAgentConfig } = await import('./config.ts');
      const { createAgentClient, openEgress } = await import('./control-channel.ts');
      const { loadPin } = await import('./control-plane-pin.ts');
      const { clientsFor, currentKeys } = await import('./current-keys.ts');
      const { loadIdentity } = await import('./identity-store.ts');
      const { NonceStore } = await import('./nonce-store.ts');
      const { receiptSigner } = await import('./receipts.ts');
      const { acquireRunLock } = await import('./run-lock.ts');
      const { SecurityLog } = await import('./security-log.ts');
      const { runDaemon } = await import('./daemon.ts');
      const { rotateKey } = await import('./key-rotation.ts');
      const { Outbox } = await import('./outbox.ts');
      const { LocalConfig } = await import('./local-config.ts');
      const { EXIT_UPDATED, loadReleaseKey } = await import('./updates.ts');
      const { AgentMetrics } = await import('./metrics.ts');
      const config = loadAgentConfig(options);
      const logger = pino({ level: config.logLevel, base: { service: 'agent' } }, pino.destination(2));
      const egress = await openEgress(...(await egressSettings(loadIdentity, config.dataDir)), config);
      const [{ identity, keyPair }, pin, local] = await Promise.all([
        currentKeys(config.dataDir, egress.fetch),
        loadPin(config.dataDir),
        LocalConfig.load({ policyFile: config.policyFile, secretsFile: config.secretsFile }),
      ]);
      const lock = await acquireRunLock(config.dataDir);
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      process.once('SIGTERM', () => controller.abort());
      const securityLog = new SecurityLog(config.dataDir);
      const stopFollowing = local.follow({ securityLog, logger });
      logger.info({ agentId: identity.agentId, policyDigest: local.current.policy.digest, proxy: egress.proxy ?? null }, 'agent started');
      // Receipts are signed with whichever key the control plane holds now: a rotation updates it in place.
      const activeKey = { ...keyPair };
      const keysOnDisk = {
        reload: async () => {
          Object.assign(activeKey, (await currentKeys(config.dataDir)).keyPair);
          return clientsFor(identity, egress.fetch)(activeKey);
        },
        rotate: async () => {
          const settled = await currentKeys(config.dataDir);
          await rotateKey(config.dataDir, settled.identity, settled.keyPair, clientsFor(settled.identity, egress.fetch));
          return keysOnDisk.reload();
        },
      };
      const reports = await runDaemon(
        {
          client: createAgentClient(identity.controlPlaneUrl, identity.agentId, keyPair, egress.fetch),
          keys: keysOnDisk,
          local,
          outbox: new Outbox(config.dataDir),
          logger,
          dataDir: config.dataDir,
          retry: config.retry,
          identity,
          pin,
          nonces: new NonceStore(config.dataDir),
          securityLog,
          receipts: receiptSigner(identity, activeKey),
          witnessIntervalMs: config.witnessIntervalMs,
          updates: { releaseKey: await loadReleaseKey(config.updates.releaseKeyFile), settings: config.updates },
          version,
          metrics: new AgentMetrics({ agentId: identity.agentId, version, proxy: egress.proxy !== null && egress.proxy !== undefined, file: config.metricsFile }),
        },
        options.once ? { maxJobs: 1, idleTimeoutMs: Number(options.idleTimeout) * 1000, signal: controller.signal } : { signal: controller.signal },
      ).finally(async () => {
        stopFollowing();
        await egress.close();
        return lock.release();
      });
      const switched = reports.find((outcome) => outcome.kind === 'switched');
      if (switched !== undefined) {
        print(options.json, { switched: switched.version }, () => `switched to ${switched.version}; restarting`);
        process.exitCode = EXIT_UPDATED;
        return;
      }
      if (options.once) {
        const outcome = reports[0];
        if (outcome?.kind === 'refused') {
          print(options.json, { refused: outcome.event }, () => `job refused (${outcome.event.kind}): ${outcome.event.reason}`);
          process.exitCode = EXIT_REFUSED;
          return;
        }
        const report = outcome?.kind === 'run' ? outcome.report : undefined;
        print(options.json, report ?? null, () => (report ? `run ${report.runId} ${report.status}` : 'no job arrived'));
        if (!report || report.status !== 'succeeded') process.exitCode = report?.errorClass === 'policy-violation' ? EXIT_REFUSED : 1;
      }
    });

  common(program.command('update-guard'))
    .description('before each start (the unit\'s ExecStartPre): roll back a new version that has not heartbeated in time or in its allowed starts')
    .action(async (options: CommonOptions) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { guardStart } = await import('./updates.ts');
      const { SecurityLog } = await import('./security-log.ts');
      const config = loadAgentConfig(options);
      const outcome = await guardStart(config.dataDir, config.updates);
      if (outcome.action === 'rolled-back') await new SecurityLog(config.dataDir).record('update-rolled-back', outcome.reason);
      print(options.json, outcome, () => (outcome.action === 'rolled-back' ? `rolled back: ${outcome.reason}` : outcome.action === 'counted' ? `new version on trial, start ${outcome.starts}` : 'no update pending'));
    });

  common(program.command('status'))
    .description('show this agent\'s identity, policy and whether the control plane answers')
    .action(async (options: CommonOptions) => {
      const { encodeKey } = await import('@airlock/identity');
      const { loadAgentConfig } = await import('./config.ts');
      const { createAgentClient, openEgress, reportedHostname } = await import('./control-channel.ts');
      const { loadPin } = await import('./control-plane-pin.ts');
      const { currentKeys } = await import('./current-keys.ts');
      const { AGENT_VERSION } = await import('./daemon.ts');
      const { loadIdentity } = await import('./identity-store.ts');
      const { LocalPolicy } = await import('./policy.ts');
      const config = loadAgentConfig(options);
      const egress = await openEgress(...(await egressSettings(loadIdentity, config.dataDir)), config);
      const { identity, keyPair } = await currentKeys(config.dataDir, egress.fetch);
      const policy = await LocalPolicy.load(config.policyFile);
      let reachable = false;
      let problem: string | null = null;
      try {
        await createAgentClient(identity.controlPlaneUrl, identity.agentId, keyPair, egress.fetch).agent.heartbeat.mutate({ version: AGENT_VERSION, hostname: reportedHostname() });
        reachable = true;
      } catch (error) {
        problem = forPerson(error).message;
      } finally {
        await egress.close();
      }
      const pin = await loadPin(config.dataDir);
      const status = { ...identity, proxyInUse: egress.proxy ?? null, publicKey: encodeKey(keyPair.publicKey), controlPlaneKey: pin.fingerprint, policyFile: config.policyFile, policyDigest: policy.digest, reachable, problem };
      print(options.json, status, () =>
        [
          `agent       ${identity.agentId}`,
          `tenant      ${identity.tenantId}`,
          `control     ${identity.controlPlaneUrl} (${reachable ? 'reachable' : `unreachable: ${problem ?? ''}`})`,
          `proxy       ${egress.proxy ?? 'none (direct)'}`,
          `pinned key  ${pin.fingerprint}`,
          `policy      ${config.policyFile} sha256:${policy.digest}`,
        ].join('\n'),
      );
      if (!reachable) process.exitCode = 1;
    });

  const keys = program.command('keys').description('the agent\'s Ed25519 identity key and OpenPGP signing key (kept in the data directory, mode 0600)');
  common(keys.command('create-signing'))
    .description('create the signing key the agent signs deliveries with (output.sign); refuses to replace one')
    .option('--name <name>', 'user ID on the key', `Airlock agent on ${os.hostname()}`)
    .action(async (options: CommonOptions & { name: string }) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { createSigningKey, signingKeyFile } = await import('./signing-key.ts');
      const config = loadAgentConfig(options);
      const key = await createSigningKey(config.dataDir, options.name);
      print(options.json, { fingerprint: key.fingerprint, file: signingKeyFile(config.dataDir) }, () => `signing key ${key.fingerprint} in ${signingKeyFile(config.dataDir)}`);
    });
  common(keys.command('rotate'))
    .description('replace this agent\'s Ed25519 identity key without re-enrolling; the old key is refused from then on')
    .action(async (options: CommonOptions) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { openEgress } = await import('./control-channel.ts');
      const { clientsFor, currentKeys } = await import('./current-keys.ts');
      const { loadIdentity } = await import('./identity-store.ts');
      const { rotateKey } = await import('./key-rotation.ts');
      const config = loadAgentConfig(options);
      const egress = await openEgress(...(await egressSettings(loadIdentity, config.dataDir)), config);
      const { identity, keyPair } = await currentKeys(config.dataDir, egress.fetch);
      const result = await rotateKey(config.dataDir, identity, keyPair, clientsFor(identity, egress.fetch)).finally(() => egress.close());
      print(options.json, { agentId: identity.agentId, ...result }, () => `agent ${identity.agentId} now uses key ${result.publicKey} (rotated ${result.rotatedAt})`);
    });
  common(keys.command('show-signing'))
    .description('print the public half of the signing key, for partners to verify signatures')
    .option('--armor', 'print the armored public key')
    .action(async (options: CommonOptions & { armor?: boolean }) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { loadSigningKey } = await import('./signing-key.ts');
      const config = loadAgentConfig(options);
      const key = await loadSigningKey(config.dataDir);
      if (!key) throw new UserError(`no signing key in ${config.dataDir}: run \`airlock-agent keys create-signing\``);
      if (options.armor) {
        process.stdout.write(key.armoredPublicKey.endsWith('\n') ? key.armoredPublicKey : `${key.armoredPublicKey}\n`);
        return;
      }
      print(options.json, { fingerprint: key.fingerprint, publicKey: key.armoredPublicKey }, () => `signing key ${key.fingerprint}`);
    });

  common(program.command('security'))
    .description('show the local security log: every job, key change or audit history this agent refused')
    .action(async (options: CommonOptions) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { SecurityLog } = await import('./security-log.ts');
      const config = loadAgentConfig(options);
      const events = await new SecurityLog(config.dataDir).read();
      print(options.json, events, () => events.map((e) => `${e.at}  ${e.kind.padEnd(26)}  ${e.runId ?? '-'}  ${e.reason}`).join('\n') || 'no security events');
    });

  const receipts = program.command('receipts').description('the receipts this agent signed for its deliveries');
  common(receipts.command('check'))
    .description("check receipts a control plane holds (`airlock receipts export`) against this agent's key and its own log; each forgery is a security event")
    .requiredOption('--file <jsonl>', 'one signed receipt per line')
    .action(async (options: CommonOptions & { file: string }) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { checkReceipts } = await import('./receipts.ts');
      const { SecurityLog } = await import('./security-log.ts');
      const { loadIdentity } = await import('./identity-store.ts');
      const config = loadAgentConfig(options);
      const { keyPair } = await loadIdentity(config.dataDir);
      const result = await checkReceipts(config.dataDir, options.file, keyPair.publicKey, new SecurityLog(config.dataDir));
      print(options.json, result, () =>
        [`${result.ok ? 'ok' : 'NOT OK'}: ${result.receipts - result.forged.length} of ${result.receipts} receipts are this agent's`, ...result.forged.map((f) => `  line ${f.line}: ${f.reason}`)].join('\n'),
      );
      if (!result.ok) process.exitCode = 1;
    });

  const policy = program.command('policy').description('the local policy');
  common(policy.command('show'))
    .description('print the effective local policy')
    .action(async (options: CommonOptions) => {
      const { loadAgentConfig } = await import('./config.ts');
      const { LocalPolicy } = await import('./policy.ts');
      const config = loadAgentConfig(options);
      const loaded = await LocalPolicy.load(config.policyFile);
      print(options.json, { file: config.policyFile, digest: loaded.digest, policy: loaded.document }, () => JSON.stringify(loaded.document, null, 2));
    });

  return program;
}

export async function main(argv: string[], build: { version?: string } = {}): Promise<void> {
  const json = argv.includes('--json');
  try {
    await buildProgram({ jsonErrors: json, ...build }).parseAsync(argv);
  } catch (error) {
    // Commander ends `--help` and `--version` by throwing too, with status 0.
    if (isCommanderExit(error) && error.exitCode === 0) return;
    const shown = forPerson(error);
    process.exitCode = shown.exitCode;
    // Commander already printed its own complaint, and the help after it.
    if (isCommanderExit(error) && !json) return;
    process.stderr.write(json ? `${JSON.stringify(personErrorJson(shown))}\n` : `airlock-agent: ${shown.message}\n`);
  }
}

function isCommanderExit(error: unknown): error is { code: string; exitCode: number } {
  if (typeof error !== 'object' || error === null) return false;
  const code: unknown = Reflect.get(error, 'code');
  return typeof code === 'string' && code.startsWith('commander.') && typeof Reflect.get(error, 'exitCode') === 'number';
}
