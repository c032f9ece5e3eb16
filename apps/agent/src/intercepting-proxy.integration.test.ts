/**
 * An intercepting proxy, the way a corporate TLS inspection box works: it answers CONNECT, ends the
 * agent's TLS with a certificate from its own private CA, and passes the requests on to the real
 * control plane, reading (and here rewriting) every answer. The agent accepts that CA only when told
 * to (`--ca-file` or NODE_EXTRA_CA_CERTS), and the pin still holds: a rewritten control-plane key is
 * refused before the enrollment token is ever sent.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpHandler, type Database, Dispatcher, migrate, openPglite, signerFromSecretKey } from '@airlock/api';
import { encodeKey, generateKeyPair, keyFingerprint } from '@airlock/identity';

const AGENT_BIN = fileURLToPath(new URL('../bin/airlock-agent.js', import.meta.url));
/** The control plane's name as the agent knows it; only the proxy ever resolves it. */
const CONTROL_PLANE = 'https://cp.airlock.test';
const silent = { warn: () => undefined, error: () => undefined };

function openssl(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args[0] ?? ''} exited with ${String(code)}: ${stderr.trim()}`))));
  });
}

/** A private CA and a certificate it issued for the control plane's name. */
async function privateCa(dir: string): Promise<{ caFile: string; cert: string; key: string }> {
  const file = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=Inspection CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await openssl(['req', ...ec, '-keyout', file('leaf.key'), '-out', file('leaf.csr'), '-subj', '/CN=cp.airlock.test', '-addext', 'subjectAltName=DNS:cp.airlock.test']);
  await openssl(['x509', '-req', '-in', file('leaf.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('leaf.pem'), '-days', '1', '-copy_extensions', 'copyall']);
  return { caFile: file('ca.pem'), cert: await readFile(file('leaf.pem'), 'utf8'), key: await readFile(file('leaf.key'), 'utf8') };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agent(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT_BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a TLS-intercepting proxy between the agent and the control plane [operations:proxy]', () => {
  let scratch: string;
  let db: Database;
  let proxy: Server;
  let proxyUrl: string;
  let ca: { caFile: string; cert: string; key: string };
  let genuineFingerprint: string;
  const forgedKey = encodeKey(generateKeyPair().publicKey);
  /** Rewrite the control plane's key in its identity answer, as an attacker in the proxy would. */
  let tamper = false;
  const seen: string[] = [];

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'airlock-intercept-'));
    ca = await privateCa(scratch);
    db = await openPglite(path.join(scratch, 'db'));
    await migrate(db);
    const signer = signerFromSecretKey(generateKeyPair().secretKey);
    genuineFingerprint = keyFingerprint(signer.publicKey);
    const controlPlane = createHttpHandler({ db, dispatcher: new Dispatcher(50), now: () => new Date(), logger: silent, signer }, { maxBodyBytes: 64 * 1024 });
    // What the proxy serves inside each tunnel it decrypted: the real control plane, its answers read and maybe rewritten.
    const inside = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
      if (tamper && (req.url ?? '').startsWith('/trpc/controlPlane.identity')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ result: { data: { publicKey: forgedKey, keyId: 'forged', fingerprint: keyFingerprint(Buffer.from(forgedKey, 'base64')) } } }));
        return;
      }
      void controlPlane(req, res);
    });
    proxy = createServer((_req, res) => {
      res.writeHead(405);
      res.end();
    });
    proxy.on('connect', (req: IncomingMessage, socket: Socket) => {
      seen.push(`CONNECT ${req.url ?? ''}`);
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const tls = new TLSSocket(socket, { isServer: true, cert: ca.cert, key: ca.key });
      tls.on('error', () => socket.destroy());
      inside.emit('connection', tls);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise((resolve) => proxy?.close(resolve));
    await db?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  const enroll = async (extra: readonly string[], env: NodeJS.ProcessEnv, fingerprint = genuineFingerprint): Promise<Run> => {
    const dir = await mkdtemp(path.join(scratch, 'agent-'));
    return agent(['enroll', '--url', CONTROL_PLANE, '--control-plane-key', fingerprint, '--dir', dir, '--json', ...extra], { AIRLOCK_ENROLL_TOKEN: 'not-a-real-token', ...env });
  };
  const errorOf = (run: Run) => (JSON.parse(run.stderr.trim().split('\n').at(-1) ?? '{}') as { error?: { code?: string; message?: string } }).error;

  it('refuses the private CA unless it is configured', async () => {
    const run = await enroll([], { HTTPS_PROXY: proxyUrl });
    expect(run.code).toBe(1);
    expect(errorOf(run)?.code).toBe('network-tls');
  });

  it('trusts the CA from --ca-file or NODE_EXTRA_CA_CERTS and reaches the real control plane through it', async () => {
    tamper = false;
    for (const [extra, env] of [
      [['--ca-file', ca.caFile], { HTTPS_PROXY: proxyUrl }],
      [[], { HTTPS_PROXY: proxyUrl, NODE_EXTRA_CA_CERTS: ca.caFile }],
    ] as const) {
      seen.length = 0;
      const run = await enroll(extra, env);
      // Past TLS and past the pin: the real control plane refused the made-up token.
      expect(errorOf(run)?.code).not.toMatch(/^network/);
      expect(errorOf(run)?.code).not.toBe('policy-violation');
      expect(seen).toContain('CONNECT cp.airlock.test:443');
      expect(seen.some((line) => line.startsWith('POST /trpc/enrollment.enroll'))).toBe(true);
    }
  });

  it('cannot make the agent accept a rewritten control-plane key: refused before the token is sent', async () => {
    tamper = true;
    seen.length = 0;
    const run = await enroll(['--ca-file', ca.caFile], { HTTPS_PROXY: proxyUrl });
    expect(run.code).toBe(3);
    expect(errorOf(run)?.code).toBe('policy-violation');
    expect(errorOf(run)?.message).toContain(`not the pinned ${genuineFingerprint}; the token was not used`);
    expect(seen.some((line) => line.startsWith('GET /trpc/controlPlane.identity'))).toBe(true);
    expect(seen.some((line) => line.includes('enrollment.enroll'))).toBe(false);
  });
});
