/**
 * The product demo: a control plane on embedded PGlite, an SFTP server with three CSV files, an
 * enrolled agent, one integration run end to end, every delivered file decrypted with gpg and
 * checked against its source, and the audit trail. The console is built and served by the control
 * plane, with an owner login generated for this demo. Run from the repo root:
 *
 *   node --import tsx test/demo/demo.ts [--json] [--serve]
 *
 * `--serve` keeps everything running after the checks, so the console can be explored, until Ctrl-C.
 * Everything lives in `.airlock-demo/<timestamp>/`, which stays on disk afterwards. With `--json`
 * the progress goes to stderr and stdout's last line is one JSON object: the delivered ciphertext,
 * the demo recipient's secret key file, each plaintext source with its SHA-256, and the console's
 * URL and login.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { buildConsole } from '../src/console-build.ts';
import { type AirlockSystem, REPO_ROOT, startSystem, timestamp } from '../src/system.ts';

const RUN_TIMEOUT_MS = 30_000;

const json = process.argv.slice(2).includes('--json');
const serve = process.argv.slice(2).includes('--serve');
const CONSOLE_EMAIL = 'admin@airlock-demo.example';
const say = (line: string): void => {
  (json ? process.stderr : process.stdout).write(`${line}\n`);
};

function sampleFiles(): Record<string, string> {
  const rows = (header: string, count: number, row: (i: number) => string): string =>
    [header, ...Array.from({ length: count }, (_, i) => row(i + 1))].join('\n') + '\n';
  return {
    'customers.csv': rows('id,name,country', 200, (i) => `${i},Customer ${i},${['DE', 'FR', 'NL', 'SE'][i % 4] ?? 'DE'}`),
    'orders.csv': rows('id,customer_id,amount_cents', 1_000, (i) => `${i},${(i % 200) + 1},${(i * 7919) % 100_000}`),
    'invoices.csv': rows('id,order_id,status', 500, (i) => `${i},${i * 2},${i % 3 === 0 ? 'paid' : 'open'}`),
  };
}

let running: AirlockSystem | undefined;

async function demo(): Promise<void> {
  const started = Date.now();
  const workDir = path.join(REPO_ROOT, '.airlock-demo', timestamp());
  say(`Airlock demo in ${path.relative(process.cwd(), workDir) || workDir}`);
  // A fresh password per demo, printed once below; it never leaves this machine's terminal.
  const login = { email: CONSOLE_EMAIL, role: 'owner' as const, password: randomBytes(18).toString('base64url') };
  const consoleDir = path.join(workDir, 'console');
  await buildConsole(consoleDir);
  say('  ✓ console built');
  const system = await startSystem({
    files: sampleFiles(),
    workDir,
    consoleDir,
    consoleUsers: [login],
    sftp: 'sshd-or-in-process',
    onStep: (line) => say(`  ✓ ${line}`),
  });
  running = system;
  try {
    const integration = await system.createIntegration({ name: 'demo-exports' });
    say(`  ✓ integration ${integration.id} (v${integration.version}) saved`);
    system.startAgent();
    say('  ✓ agent running (outbound long-poll, no listening port)');
    const runId = await system.runNow(integration.id);
    say(`  ✓ run ${runId} requested`);
    const run = await system.waitForRun(runId, RUN_TIMEOUT_MS);
    if (run.status !== 'succeeded') throw new Error(`run ${runId} ${run.status}${run.errorClass ? ` (${run.errorClass})` : ''}`);
    const files = run.report?.files.length ?? 0;
    say(`  ✓ run succeeded: ${files} files, ${run.report?.files.reduce((sum, f) => sum + f.bytesOut, 0) ?? 0} bytes of ciphertext`);

    const decrypted = await system.decryptDelivered();
    if (decrypted.length !== system.sources.length) {
      throw new Error(`expected ${system.sources.length} delivered files, found ${decrypted.length}`);
    }
    for (const file of decrypted) {
      if (file.source === undefined) throw new Error(`${path.basename(file.ciphertext)} matches no source`);
      if (file.sha256 !== file.source.sha256) throw new Error(`${path.basename(file.ciphertext)} does not decrypt to its source`);
      say(`  ✓ gpg: ${path.basename(file.ciphertext)} decrypts to ${file.source.name} (sha256 ${file.sha256.slice(0, 16)}…)`);
    }

    const audit = await system.airlock(['audit', 'list']);
    say('\nAudit trail:');
    say(audit.stdout.trimEnd());

    say(`\nConsole: ${system.controlPlaneUrl}/  (sign in to tenant demo as ${login.email}, password ${login.password})`);
    if (!serve) say('The console stops with the demo; `npm run demo -- --serve` keeps it up.');
    if (serve) {
      say('Serving until Ctrl-C.');
      await new Promise<never>(() => undefined);
    }
    await system.stop();
    running = undefined;
    say(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s. Everything is in ${workDir}`);
    say(`Check it yourself: gpg --import ${system.recipientSecretKeyFile}; gpg -d ${path.join(system.deliveredDir, '<file>.pgp')}`);
    if (json) {
      process.stdout.write(
        `${JSON.stringify({
          workDir,
          runId,
          delivered: decrypted.map((file) => file.ciphertext),
          recipientSecretKey: system.recipientSecretKeyFile,
          sources: system.sources.map((source) => ({ path: source.path, sha256: source.sha256 })),
          console: { url: `${system.controlPlaneUrl}/`, tenant: 'demo', email: login.email, password: login.password },
        })}\n`,
      );
    }
  } finally {
    await system.stop();
  }
}

const interrupt = (): void => {
  void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
};
process.once('SIGINT', interrupt);
process.once('SIGTERM', interrupt);

demo().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`demo failed: ${message.split('\n')[0] ?? message}\n`);
  process.exitCode = 1;
});
