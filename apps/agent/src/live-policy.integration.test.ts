/**
 * The local policy as the running agent follows it: policy.yaml is narrowed on disk while a
 * multi-file run is under way, the agent picks the change up the way it does in production (a
 * watch on the file's directory, no restart), and the next file it opens is refused.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BoundSource, ConnectorRegistry, SourceFile, SourceSession } from '@airlock/connector-api';
import { quietLogger } from '@airlock/connector-api/testkit';
import { type DemoKey, generateDemoKey } from '@airlock/pgp';
import { job as jobSchema } from '@airlock/protocol';
import { LocalConfig } from './local-config.ts';
import { SecurityLog } from './security-log.ts';
import { runJob } from './transfer.ts';

/** How long the watch may take to notice the rewrite on a loaded machine. */
const RELOAD_WITHIN_MS = 10_000;

/**
 * The registry with one hook: the first time the source opens a file, `beforeFirstOpen` runs to
 * completion before the file's bytes are handed over, so the change lands between two files.
 */
function withHook(registry: ConnectorRegistry, beforeFirstOpen: () => Promise<void>): ConnectorRegistry {
  let fired = false;
  const open = (session: SourceSession) => async (file: SourceFile): Promise<Readable> => {
    if (!fired) {
      fired = true;
      await beforeFirstOpen();
    }
    return session.open(file);
  };
  const connect = (bound: BoundSource) => async (ctx: Parameters<BoundSource['connect']>[0]) => delegate(await bound.connect(ctx), { open });
  return delegate(registry, { source: (inner) => (ref: string, config: unknown) => delegate(inner.source(ref, config), { connect }) });
}

/** `target` with some methods replaced; the rest called on `target` itself, whose private fields they may use. */
function delegate<T extends object>(target: T, replace: { [K in keyof T]?: (target: T) => T[K] }): T {
  return new Proxy(target, {
    get(inner, property) {
      const replacement = (replace as Record<string | symbol, ((target: T) => unknown) | undefined>)[property];
      if (replacement) return replacement(inner);
      const value: unknown = Reflect.get(inner, property, inner);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(inner) : value;
    },
  });
}

describe('a policy narrowed while a job runs', () => {
  let work: string;
  let recipient: DemoKey;
  beforeAll(async () => {
    work = await realpath(await mkdtemp(path.join(os.tmpdir(), 'airlock-live-policy-')));
    recipient = await generateDemoKey('Partner', 'partner@example.com');
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('refuses the next file the agent opens, and keeps what it delivered before', async () => {
    const dirs = { in: path.join(work, 'in'), out: path.join(work, 'out'), etc: path.join(work, 'etc'), data: path.join(work, 'data') };
    for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of ['a.csv', 'b.csv', 'c.csv']) await writeFile(path.join(dirs.in, name), `${name} contents\n`);
    const policyFile = path.join(dirs.etc, 'policy.yaml');
    const secretsFile = path.join(dirs.etc, 'secrets.yaml');
    const policy = (paths: string[]) =>
      [`recipients: ["${recipient.fingerprint}"]`, 'sources:', '  local:', `    - paths: [${paths.map((p) => JSON.stringify(p)).join(', ')}]`, 'destinations:', '  local:', `    - root: ${JSON.stringify(dirs.out)}`, ''].join('\n');
    await writeFile(policyFile, policy([`${dirs.in}/**`]), { mode: 0o644 });
    await writeFile(secretsFile, '{}\n', { mode: 0o600 });

    const local = await LocalConfig.load({ policyFile, secretsFile });
    const stop = local.follow({ securityLog: new SecurityLog(dirs.data), logger: quietLogger, debounceMs: 20 });
    try {
      const wide = local.current.policy.digest;
      const narrow = async () => {
        await writeFile(policyFile, policy([path.join(dirs.in, 'a.csv')]), { mode: 0o644 });
        const until = Date.now() + RELOAD_WITHIN_MS;
        while (local.current.policy.digest === wide) {
          if (Date.now() > until) throw new Error(`policy.yaml was not reloaded within ${RELOAD_WITHIN_MS} ms`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      const job = jobSchema.parse({
        runId: randomUUID(),
        integrationId: randomUUID(),
        integrationVersion: 1,
        spec: {
          name: 'live-policy',
          agentId: randomUUID(),
          source: { connector: 'local@1', config: { path: `${dirs.in}/*.csv` } },
          destination: { connector: 'local@1', config: { directory: dirs.out } },
          recipients: [recipient.armoredPublicKey],
          selection: { stableForMs: 0 },
          concurrency: 1,
        },
      });
      // As the daemon wires it: the policy at the job's start, and the live one before each file.
      const report = await runJob(job, {
        registry: withHook(local.current.registry, narrow),
        policy: local.current.policy,
        livePolicy: () => local.current.policy,
        secrets: (ref) => local.current.secrets(ref),
        logger: quietLogger,
        dataDir: dirs.data,
      });
      expect(local.current.policy.digest).not.toBe(wide);
      expect(report).toMatchObject({ status: 'failed', errorClass: 'policy-violation', violation: { kind: 'file' } });
      expect(report.reason).toBe(`policy refused: reading file://${path.join(dirs.in, 'b.csv')} is outside the local policy`);
      expect(report.files.map((file) => path.basename(file.sourcePath))).toEqual(['a.csv']);
      expect(await readdir(dirs.out)).toEqual(['a.csv.pgp']);
    } finally {
      stop();
    }
  });
});
