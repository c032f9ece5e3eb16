/**
 * `npm run -s bench:fleet -- [--json] [--agents 10000] [--dispatch-agents 1000] [--runs 200]`
 *
 * One control plane (`airlock serve`, its own process, compiled as `npm run build` compiles it: the
 * code an install runs, not the sources through tsx) on a throwaway PostgreSQL, driven by agents
 * that enroll through the real enrollment API and speak with the agent's own client and signing
 * code (`createAgentClient`), all on loopback:
 *   signed_calls_per_s         heartbeats per second from 200 concurrent agents (target ≥ 3,000);
 *   signed_call_cpu_ms         {server, postgres, load_generator}: CPU each spent per heartbeat then,
 *                              which with the machine's cores bounds that rate;
 *   floor_calls_per_s          the same load, with the same HTTP client, on a reference server that
 *                              answers each call with one statement and nothing else (fleet-floor.ts):
 *                              the least a call costs here; floor_call_cpu_ms as above, and
 *                              signed_calls_vs_floor the heartbeats' rate over it;
 *   dispatch_ms                {p50, p95, p99}: --runs runs requested while --dispatch-agents agents
 *                              wait, each from the request to the agent holding the envelope it
 *                              verified with the control plane's key (target p99 ≤ 500);
 *   cross_replica_dispatch_ms  {p50, p99}: a second control plane on the same PostgreSQL, runs
 *                              requested on the first, agents waiting on the second (target ≤ 500),
 *                              in the second round: the second replica starts just before, and its
 *                              first round (cross_replica_first_round_ms, a diagnostic) runs cold code;
 *   agents_held, errors        --agents agents waiting at once (each on its open wake-up stream,
 *                              heartbeating every 5 minutes), and every failed call;
 *   idle_cpu_cores             server and PostgreSQL CPU while they all wait with nothing to do
 *                              (from /proc/<pid>/stat; target ≤ 0.25);
 *   idle_agent_cpu_us_per_s    {server, postgres}: CPU each spent then per waiting agent per second;
 *   idle_streams_opened_per_s  wake-up streams the server opened per second then (each stream ends
 *                              after 12 to 15 minutes and its agent opens the next);
 *   rss_mb                     the server's resident memory then.
 * `loadavg` holds the machine's 1-minute load average taken next to each figure: the machine is
 * shared, and a busy neighbour slows every figure. Every other figure above, and the run's own
 * facts, are under `diagnostics`.
 *
 * The run raises its own open-file limit (prlimit on its own pid, inherited by the servers), never
 * the machine's. The load's rate limits are raised for the servers it starts (every agent enrolls
 * from 127.0.0.1, and 200 agents heartbeat far faster than a real one). Every phase is bounded in
 * count and time.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createTRPCClient, httpLink } from '@trpc/client';
import { createAgentClient, createEnrollmentClient, reconnectDelay, retryAfterOf } from '@airlock/agent';
import { HEARTBEAT_INTERVAL_MS, RECONNECT_MAX_DELAY_MS, WAKEUP_STREAM_MS } from '@airlock/protocol';
import { bootstrapTenant } from '@airlock/api';
import { buildControlPlaneCli } from '@airlock/control-plane/bundle';
import { cliIsCurrent } from '@airlock/agent/bundle';
import type { AppRouter } from '@airlock/api/router';
import { connectPostgres, migrate } from '@airlock/storage';
import { encodeKey, generateKeyPair, type AgentKeyPair, openStatement } from '@airlock/identity';
import { generateDemoKey } from '@airlock/pgp';
import { startPostgres } from '@airlock/testing';
import { setUpCli } from './cli.ts';
import { topSelfTime } from './cpu-profile.ts';
import { actAsAgent } from './fleet-agent-loop.ts';
import type { HoldOrder, HolderMessage } from './fleet-agents.ts';
import { REPO_ROOT } from '../src/system.ts';

setUpCli();
const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    agents: { type: 'string', default: '10000' },
    'dispatch-agents': { type: 'string', default: '1000' },
    runs: { type: 'string', default: '200' },
    'heartbeat-seconds': { type: 'string', default: '8' },
    'idle-seconds': { type: 'string', default: '30' },
    /** How long the idle fleet takes to start: about a wake-up stream's life, so its reopenings are spread by the window. */
    'ramp-seconds': { type: 'string', default: String(Math.round((WAKEUP_STREAM_MS * 0.9) / 1000)) },
    /** Profiles the first control plane (node --cpu-prof) and adds its top self times to the output. */
    profile: { type: 'boolean', default: false },
    /** With --profile: where the .cpuprofile files are kept, in a directory of this run's own (else they go with the run's temporary directory). */
    'profile-dir': { type: 'string' },
  },
});
const whole = (name: string, text: string | undefined) => {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} takes a positive whole number`);
  return value;
};
const AGENTS = whole('agents', values.agents);
const DISPATCH_AGENTS = Math.min(AGENTS, whole('dispatch-agents', values['dispatch-agents']));
const RUNS = Math.min(DISPATCH_AGENTS, whole('runs', values.runs));
const HEARTBEAT_AGENTS = Math.min(AGENTS, 200);
const HEARTBEAT_SECONDS = whole('heartbeat-seconds', values['heartbeat-seconds']);
const IDLE_SECONDS = whole('idle-seconds', values['idle-seconds']);
const RAMP_SECONDS = whole('ramp-seconds', values['ramp-seconds']);
const CROSS_AGENTS = Math.min(AGENTS, 200);
const CROSS_RUNS = Math.min(CROSS_AGENTS, 50);
const ENROLL_CONCURRENCY = 64;
/** Processes that hold the idle fleet's long-polls, each from its own 127.0.0.x address. */
const HOLDERS = 4;
/** The longest the enrolment and the ramp-up may take; a busy machine stops the run here rather than running on. */
const PHASE_LIMIT_MS = 600_000;
const START_TIMEOUT_MS = 60_000;

/** Progress goes to stderr, so stdout holds only the JSON. */
const log = (message: string) => process.stderr.write(`${message}\n`);
const loadavg = () => Math.round((os.loadavg()[0] ?? 0) * 100) / 100;

// The load needs a socket per waiting agent, plus the servers' own: raised for this process and
// inherited by every child it spawns; the machine's limits stay as they are.
spawnSync('prlimit', ['--pid', String(process.pid), '--nofile=200000:200000'], { stdio: 'ignore' });

/** Runs `work` over `items` with at most `limit` at once. */
async function forEachLimit<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index] as T, index);
      }
    }),
  );
}

/**
 * A failed call is counted, then the agent backs off as the daemon does (full jitter, at least the
 * server's Retry-After), unless the phase is over.
 */
async function backOff(error: unknown, failures: number, signal: AbortSignal): Promise<void> {
  await sleep(reconnectDelay(failures, retryAfterOf(error), RECONNECT_MAX_DELAY_MS), undefined, { signal }).catch(() => undefined);
}

/** An admin call retried while the server sheds load (bounded), waiting as long as it asks. */
async function whileShedding<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const wait = retryAfterOf(error);
      if (wait === null || attempt >= 5) throw error;
      shed += 1;
      await sleep(wait);
    }
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);
}

/** Jiffies of user + system time of `pid`, or 0 once it has gone. */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
}

async function parentOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? 0);
}

/** The postmaster and every process it started: this cluster's PostgreSQL, not a neighbour's. */
async function postgresPids(postmaster: number): Promise<number[]> {
  const pids = [postmaster];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if ((await parentOf(Number(entry))) === postmaster) pids.push(Number(entry));
  }
  return pids;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return Math.round(Number(match?.[1] ?? 0) / 1024);
}

interface Server {
  url: string;
  child: ChildProcess;
}

async function startServer(env: NodeJS.ProcessEnv, profileDir?: string): Promise<Server> {
  const profiling = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  const child = spawn(process.execPath, [...profiling, path.join(CONTROL_PLANE_APP, 'bin/airlock.js'), 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr?.on('data', () => undefined);
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('control plane did not start in time')), START_TIMEOUT_MS);
    child.once('exit', (code) => reject(new Error(`control plane exited (${code})`)));
    lines.on('line', (line) => {
      if (!line.includes('control plane listening')) return;
      const parsed = JSON.parse(line) as { url?: string };
      clearTimeout(timer);
      if (parsed.url) resolve(parsed.url);
    });
  });
  return { url, child };
}

const CONTROL_PLANE_APP = path.join(REPO_ROOT, 'apps/control-plane');
await buildControlPlaneCli();
// The bin runs the bundle only while it is current: a source saved during the build would run through tsx.
if (!(await cliIsCurrent(CONTROL_PLANE_APP))) throw new Error('the control plane bundle is not current after building it');

const work = await mkdtemp(path.join(tmpdir(), 'airlock-fleet-'));
await using postgres = await startPostgres();
const databaseUrl = await postgres.createDatabase();
const setup = connectPostgres(databaseUrl, { maxConnections: 2 });
await migrate(setup);
const [backend] = await setup.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
const postmaster = await parentOf(Number(backend?.pid));
const boot = await bootstrapTenant(setup, { tenant: 'fleet', keyName: 'bench', expiresInDays: 1 });
const signing = generateKeyPair();
const signingKeyFile = path.join(work, 'signing.key');
await writeFile(signingKeyFile, Buffer.from(signing.secretKey).toString('base64'), { mode: 0o600 });

const serverEnv: NodeJS.ProcessEnv = {
  PATH: process.env['PATH'],
  HOME: process.env['HOME'],
  DATABASE_URL: databaseUrl,
  AIRLOCK_DATA_DIR: path.join(work, 'cp'),
  AIRLOCK_SIGNING_KEY_FILE: signingKeyFile,
  AIRLOCK_PORT: '0',
  AIRLOCK_LOG_LEVEL: 'info',
  AIRLOCK_CONSOLE_DIR: 'off',
  AIRLOCK_RATE_LIMIT_API_KEY: '1000000',
  AIRLOCK_RATE_LIMIT_AGENT: '1000000',
  AIRLOCK_RATE_LIMIT_IP: '1000000',
};
const servers: Server[] = [];
// A run's own directory, so its top self times never count an earlier run's profiles kept there.
const keptProfiles = values['profile-dir'];
if (keptProfiles !== undefined) await mkdir(keptProfiles, { recursive: true });
const profileDir = keptProfiles === undefined ? path.join(work, 'profile') : await mkdtemp(path.join(keptProfiles, 'fleet-'));
const result: Record<string, unknown> = { agents: AGENTS };
const loads: Record<string, number> = {};
let errors = 0;
/** Admin calls the server shed (503 with Retry-After) and the bench made again. */
let shed = 0;
const phaseErrors: Record<string, number> = {};
try {
  const primary = await startServer(serverEnv, values.profile ? profileDir : undefined);
  servers.push(primary);
  const admin = createTRPCClient<AppRouter>({
    links: [httpLink({ url: `${primary.url}/trpc`, headers: { authorization: `Bearer ${boot.key}` } })],
  });

  // ---- enrolment, through the real API ----------------------------------------------------
  const enrollStarted = Date.now();
  const enroller = createEnrollmentClient(primary.url);
  const fleet: { id: string; keys: AgentKeyPair }[] = [];
  let enrollErrors = 0;
  await forEachLimit(
    Array.from({ length: AGENTS }, (_, i) => i),
    ENROLL_CONCURRENCY,
    async (i) => {
      if (Date.now() - enrollStarted > PHASE_LIMIT_MS) throw new Error('enrolment ran out of time');
      const keys = generateKeyPair();
      // A refused or dropped enrolment starts over with a new token (bounded); it is counted.
      for (let attempt = 1; ; attempt++) {
        try {
          const { token } = await admin.enrollment.createToken.mutate({ ttlMinutes: 30 });
          const enrolled = await enroller.enrollment.enroll.mutate({ token, publicKey: encodeKey(keys.publicKey), hostname: `fleet-${i}`, version: 'bench' });
          fleet.push({ id: enrolled.agentId, keys });
          return;
        } catch (error) {
          enrollErrors += 1;
          if (attempt >= 3) throw error;
          await sleep(500 * attempt);
        }
      }
    },
  );
  result['enroll_s'] = Math.round((Date.now() - enrollStarted) / 100) / 10;
  result['enroll_errors'] = enrollErrors;
  loads['enroll_s'] = loadavg();
  log(`enrolled ${fleet.length} agents in ${result['enroll_s']} s`);

  // ---- signed calls ------------------------------------------------------------------------
  {
    const clients = fleet.slice(0, HEARTBEAT_AGENTS).map((agent) => createAgentClient(primary.url, agent.id, agent.keys));
    const signed = await callsFromEach(clients, primary.child.pid ?? 0, async (client) => {
      await client.agent.heartbeat.mutate({ version: 'bench', hostname: 'fleet' });
    });
    errors += signed.errors;
    result['signed_calls_per_s'] = signed.perSecond;
    result['signed_call_cpu_ms'] = signed.cpuMs;
    phaseErrors['signed_calls_per_s'] = errors;
    loads['signed_calls_per_s'] = loadavg();
    log(`signed calls: ${result['signed_calls_per_s']}/s`);

    // The same load on the reference (fleet-floor.ts): one HTTP call and one statement, nothing of Airlock's.
    const floor = fork(path.join(import.meta.dirname, 'fleet-floor.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: { PATH: process.env['PATH'], DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    try {
      const floorUrl = await new Promise<string>((resolve, reject) => {
        floor.once('message', (message: { url: string }) => resolve(message.url));
        floor.once('exit', (code) => reject(new Error(`the reference server exited (${code})`)));
      });
      const body = JSON.stringify({ version: 'bench', hostname: 'fleet' });
      const floorCall = async () => {
        const response = await fetch(`${floorUrl}/floor`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`the reference server answered ${response.status}`);
      };
      // Its pool's connections open on first use: once open, PostgreSQL's CPU counts them all.
      await Promise.all(clients.map(floorCall));
      const reference = await callsFromEach(clients, floor.pid ?? 0, floorCall);
      result['floor_calls_per_s'] = reference.perSecond;
      result['floor_call_cpu_ms'] = reference.cpuMs;
      result['floor_errors'] = reference.errors;
      result['signed_calls_vs_floor'] = Math.round((signed.perSecond / Math.max(1, reference.perSecond)) * 1000) / 1000;
      loads['floor_calls_per_s'] = loadavg();
      log(`reference calls (HTTP and one statement, nothing else): ${reference.perSecond}/s`);
    } finally {
      floor.kill('SIGTERM');
      if (floor.exitCode === null) await new Promise((resolve) => floor.once('exit', resolve));
    }
  }

  /**
   * Calls from each of `callers` at once, each as soon as its last returned, for the heartbeat
   * phase's seconds: how many a second, how many failed, and where a call's CPU went (the server at
   * `serverPid`, PostgreSQL, this process), which bounds the rate on this machine whatever the
   * load beside it. Jiffies are 10 ms.
   */
  async function callsFromEach<T>(callers: readonly T[], serverPid: number, call: (caller: T) => Promise<void>) {
    let calls = 0;
    let failed = 0;
    const pids = [serverPid, ...(await postgresPids(postmaster))];
    const ticksBefore = await Promise.all(pids.map(cpuTicks));
    const selfBefore = process.cpuUsage();
    const until = Date.now() + HEARTBEAT_SECONDS * 1000;
    const started = Date.now();
    await Promise.all(
      callers.map(async (caller) => {
        let failures = 0;
        const phase = AbortSignal.timeout(Math.max(0, until - Date.now()));
        while (Date.now() < until) {
          try {
            await call(caller);
            calls += 1;
            failures = 0;
          } catch (error) {
            failed += 1;
            await backOff(error, ++failures, phase);
          }
        }
      }),
    );
    const perSecond = Math.round(calls / ((Date.now() - started) / 1000));
    const self = process.cpuUsage(selfBefore);
    const ticksAfter = await Promise.all(pids.map(cpuTicks));
    const spent = (i: number) => Math.max(0, (ticksAfter[i] ?? 0) - (ticksBefore[i] ?? 0)) * 10;
    const perCall = (ms: number) => Math.round((ms / Math.max(1, calls)) * 1000) / 1000;
    const cpuMs = {
      server: perCall(spent(0)),
      postgres: perCall(pids.slice(1).reduce((sum, _, i) => sum + spent(i + 1), 0)),
      load_generator: perCall((self.user + self.system) / 1000),
    };
    return { perSecond, errors: failed, cpuMs };
  }

  // ---- dispatch ----------------------------------------------------------------------------
  /** Per-agent integrations, granted and saved through the admin API. */
  const recipient = (await generateDemoKey('Fleet', 'fleet@example.com')).armoredPublicKey;
  const granted = new Set<string>();
  async function integrationFor(agentId: string, name: string): Promise<string> {
    // A small fleet serves both dispatch phases with the same agents, which are granted once.
    if (!granted.has(agentId)) {
      granted.add(agentId);
      await whileShedding(() => admin.grants.add.mutate({ agentId, scope: 'read sftp://files.example.com:2222/exports/**' }));
      await whileShedding(() => admin.grants.add.mutate({ agentId, scope: 'write file:///srv/out/**' }));
    }
    const saved = await whileShedding(() => admin.integrations.save.mutate({
      name,
      agentId,
      source: { connector: 'sftp@1', config: { host: 'files.example.com', port: 2222, hostKey: `SHA256:${'A'.repeat(43)}`, username: 'export', credentialRef: 'erp-sftp', path: '/exports/*.csv' } },
      destination: { connector: 'local@1', config: { directory: '/srv/out' } },
      recipients: [recipient],
    }));
    return saved.id;
  }

  /**
   * `agents` wait on `url` as the daemon does (fleet-agent-loop.ts) until the runs are in; `runs` integrations of theirs are then run through `requestUrl`, one at a time
   * per slot, and each is timed from the request to its agent holding the verified envelope.
   */
  async function timeDispatch(url: string, agents: typeof fleet, integrations: { agentId: string; id: string }[], requester: typeof admin): Promise<number[]> {
    // Each agent heartbeats first: the server is warm and every agent has its connection when the runs come.
    await forEachLimit(agents, 50, async (agent) => {
      try {
        await createAgentClient(url, agent.id, agent.keys).agent.heartbeat.mutate({ version: 'bench', hostname: 'fleet' });
      } catch {
        errors += 1;
      }
    });
    const stop = new AbortController();
    // One signal ends every agent: a listener each is expected, not a leak.
    setMaxListeners(0, stop.signal);
    const received = new Map<string, number>();
    const waiting = agents.map((agent) =>
      actAsAgent(createAgentClient(url, agent.id, agent.keys), {
        signal: stop.signal,
        // They heartbeated just now.
        firstHeartbeatWithinMs: HEARTBEAT_INTERVAL_MS,
        onEnvelope: (envelope) => {
          const job = openStatement('job', envelope, signing.publicKey) as { runId?: string } | undefined;
          if (job?.runId) received.set(job.runId, Date.now());
        },
        onFailure: () => void (errors += 1),
      }),
    );
    // Every agent waits on its open stream before the first run is requested.
    const connectBy = Date.now() + 60_000;
    while (Date.now() < connectBy && !waiting.every((agent) => agent.connected)) await sleep(100);
    const requested = new Map<string, number>();
    await forEachLimit(integrations, 8, async (integration) => {
      const at = Date.now();
      const run = await whileShedding(() => requester.integrations.runNow.mutate({ id: integration.id }));
      requested.set(run.runId, at);
    });
    const deadline = Date.now() + 30_000;
    while (received.size < requested.size && Date.now() < deadline) await sleep(50);
    stop.abort();
    await Promise.allSettled(waiting.map((agent) => agent.done));
    const times: number[] = [];
    for (const [runId, at] of requested) {
      const got = received.get(runId);
      if (got === undefined) errors += 1;
      else times.push(got - at);
    }
    return times.sort((a, b) => a - b);
  }

  const dispatchAgents = fleet.slice(0, DISPATCH_AGENTS);
  const targets = dispatchAgents.slice(0, RUNS);
  const integrations: { agentId: string; id: string }[] = [];
  await forEachLimit(targets, 8, async (agent, i) => void integrations.push({ agentId: agent.id, id: await integrationFor(agent.id, `fleet-${i}`) }));
  {
    const times = await timeDispatch(primary.url, dispatchAgents, integrations, admin);
    phaseErrors['dispatch_ms'] = errors - (phaseErrors['signed_calls_per_s'] ?? 0);
    result['dispatch_ms'] = { p50: percentile(times, 50), p95: percentile(times, 95), p99: percentile(times, 99) };
    loads['dispatch_ms'] = loadavg();
    log(`dispatch: ${JSON.stringify(result['dispatch_ms'])}`);
  }

  // ---- the whole fleet held, idle --------------------------------------------------------------
  {
    // The idle fleet is run by HOLDERS processes, each from its own loopback address. Its agents
    // start over --ramp-seconds, as a fleet whose agents started at different times does: by the
    // window below, the first streams are being ended and reopened as they are in a steady state,
    // and heartbeats come at their steady rate. A fleet that starts at once (after a restart) is
    // shed with 503 and spreads itself out, which the fleet integration tests prove.
    const RAMP_STEP_MS = 250;
    const holders = Array.from({ length: HOLDERS }, (_, n) => {
      const child = fork(path.join(import.meta.dirname, 'fleet-agents.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const share = fleet.filter((_, i) => i % HOLDERS === n);
      // Whole agents per step, and the pause that spreads the steps over exactly the ramp.
      const step = Math.max(1, Math.ceil(share.length / ((RAMP_SECONDS * 1000) / RAMP_STEP_MS)));
      const order: HoldOrder = {
        url: primary.url,
        localAddress: `127.0.0.${n + 2}`,
        agents: share.map((agent) => ({ id: agent.id, publicKey: Buffer.from(agent.keys.publicKey).toString('base64'), secretKey: Buffer.from(agent.keys.secretKey).toString('base64') })),
        step,
        stepMs: (RAMP_SECONDS * 1000) / Math.ceil(share.length / step),
      };
      const ramped = new Promise<void>((resolve) => child.on('message', (message: HolderMessage) => message.kind === 'ramped' && resolve()));
      child.send(order);
      return { child, ramped };
    });
    const count = async () => {
      const answers = await Promise.all(
        holders.map(
          ({ child }) =>
            new Promise<{ held: number; errors: number; answered: number; kinds: Record<string, number>; waits: Record<string, number> }>((resolve) => {
              const onMessage = (message: HolderMessage) => {
                if (message.kind !== 'count') return;
                child.off('message', onMessage);
                resolve(message);
              };
              child.on('message', onMessage);
              child.send('count');
            }),
        ),
      );
      const kinds: Record<string, number> = {};
      const waits: Record<string, number> = {};
      for (const answer of answers) for (const [kind, n] of Object.entries(answer.kinds)) kinds[kind] = (kinds[kind] ?? 0) + n;
      for (const answer of answers) for (const [kind, n] of Object.entries(answer.waits)) waits[kind] = (waits[kind] ?? 0) + n;
      return answers.reduce(
        (sum, answer) => ({ ...sum, held: sum.held + answer.held, errors: sum.errors + answer.errors, answered: sum.answered + answer.answered }),
        { held: 0, errors: 0, answered: 0, kinds, waits },
      );
    };
    try {
      // The ramp's own length, then the phase limit: the window must never open before the ramp is over.
      const phaseEnds = Date.now() + RAMP_SECONDS * 1000 + PHASE_LIMIT_MS;
      const rampLimit = new AbortController();
      await Promise.race([
        Promise.all(holders.map((holder) => holder.ramped)),
        sleep(phaseEnds - Date.now(), undefined, { signal: rampLimit.signal }).catch(() => undefined),
      ]);
      rampLimit.abort();
      // Steady state: every agent's stream has been connected, so the window below measures waiting
      // agents, not the ramp's backlog.
      while (Date.now() < phaseEnds && (await count()).answered < AGENTS) await sleep(1_000);
      const pids = [primary.child.pid ?? 0, ...(await postgresPids(postmaster))];
      const before = await Promise.all(pids.map(cpuTicks));
      const answeredBefore = (await count()).answered;
      const windowStarted = Date.now();
      await sleep(IDLE_SECONDS * 1000);
      const after = await Promise.all(pids.map(cpuTicks));
      const seconds = (Date.now() - windowStarted) / 1000;
      const spent = (i: number) => Math.max(0, (after[i] ?? 0) - (before[i] ?? 0));
      const ticks = pids.reduce((sum, _, i) => sum + spent(i), 0);
      const { held, errors: holdErrors, answered, kinds, waits } = await count();
      if (holdErrors > 0) log(`held-phase failures: ${JSON.stringify(kinds)}`);
      log(`held-phase waits on the streams, by how they ended: ${JSON.stringify(waits)}`);
      const perAgentSecond = (jiffies: number) => Math.round(((jiffies * 10 * 1000) / (Math.max(1, held) * seconds)) * 1000) / 1000;
      result['idle_agent_cpu_us_per_s'] = { server: perAgentSecond(spent(0)), postgres: perAgentSecond(ticks - spent(0)) };
      result['idle_streams_opened_per_s'] = Math.round(((answered - answeredBefore) / seconds) * 10) / 10;
      errors += holdErrors;
      result['agents_held'] = held;
      phaseErrors['agents_held'] = errors;
      result['idle_cpu_cores'] = Math.round((ticks / 100 / seconds) * 1000) / 1000;
      result['rss_mb'] = await rssMb(primary.child.pid ?? 0);
      loads['agents_held'] = loadavg();
      loads['idle_cpu_cores'] = loads['agents_held'];
      loads['rss_mb'] = loads['agents_held'];
      loads['idle_agent_cpu_us_per_s'] = loads['agents_held'];
      loads['idle_streams_opened_per_s'] = loads['agents_held'];
      log(`held ${held}, idle CPU ${result['idle_cpu_cores']} cores, RSS ${result['rss_mb']} MB`);
    } finally {
      await Promise.all(
        holders.map(({ child }) => {
          const exited = new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
          child.send('stop');
          return Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
        }),
      );
    }
  }

  // ---- across replicas -----------------------------------------------------------------------------
  {
    const second = await startServer(serverEnv);
    servers.push(second);
    const crossAgents = fleet.slice(DISPATCH_AGENTS, DISPATCH_AGENTS + CROSS_AGENTS);
    const pool = crossAgents.length >= CROSS_AGENTS ? crossAgents : fleet.slice(fleet.length - CROSS_AGENTS);
    const crossIntegrations = async (round: string) => {
      const made: { agentId: string; id: string }[] = [];
      await forEachLimit(pool.slice(0, CROSS_RUNS), 8, async (agent, i) => void made.push({ agentId: agent.id, id: await integrationFor(agent.id, `${round}-${i}`) }));
      return made;
    };
    // The second replica has just started, so its first round runs the dispatch path's code cold (the
    // first replica's was warmed by the phases before). That round is kept as a diagnostic; the
    // figure is the next one, a replica in steady state, as dispatch_ms is.
    const cold = await timeDispatch(second.url, pool, await crossIntegrations('cross-first'), admin);
    result['cross_replica_first_round_ms'] = { p50: percentile(cold, 50), p99: percentile(cold, 99) };
    const times = await timeDispatch(second.url, pool, await crossIntegrations('cross'), admin);
    result['cross_replica_dispatch_ms'] = { p50: percentile(times, 50), p99: percentile(times, 99) };
    loads['cross_replica_dispatch_ms'] = loadavg();
    log(`cross-replica dispatch: ${JSON.stringify(result['cross_replica_dispatch_ms'])}`);
  }
} finally {
  for (const server of servers) server.child.kill('SIGTERM');
  await Promise.all(servers.map((server) => new Promise((resolve) => (server.child.exitCode === null ? server.child.once('exit', resolve) : resolve(null)))));
  await setup.close();
  if (values.profile) {
    const files = (await readdir(profileDir).catch(() => [])).filter((name) => name.endsWith('.cpuprofile')).map((name) => path.join(profileDir, name));
    result['server_profile'] = files.length > 0 ? await topSelfTime(files, 15) : 'no profile written';
  }
  await rm(work, { recursive: true, force: true });
}
result['errors'] = errors;
/** Failed agent calls counted so far at the end of each phase (cumulative), to place them. */
result['errors_by_phase'] = phaseErrors;
result['admin_calls_shed'] = shed;
result['loadavg'] = loads;
result['cpus'] = os.cpus().length;
result['node'] = process.version;
// The proof line carries the fleet figures above and the load average next to each; everything
// else the run measured goes under `diagnostics`.
const NAMED = ['signed_calls_per_s', 'agents_held', 'errors', 'idle_cpu_cores', 'rss_mb', 'dispatch_ms', 'cross_replica_dispatch_ms', 'loadavg'];
const proof = Object.fromEntries(NAMED.map((name) => [name, result[name] ?? null]));
proof['diagnostics'] = Object.fromEntries(Object.entries(result).filter(([name]) => !NAMED.includes(name)));
if (values.json) process.stdout.write(`${JSON.stringify(proof)}\n`);
else console.log(proof);
// Everything this run opened is closed above. Should anything still hold the event loop, the run is
// bounded anyway: it names what is left, on stderr, and exits.
setTimeout(() => {
  log(`still open after the report: ${process.getActiveResourcesInfo().join(', ')}; exiting`);
  process.exit(0);
}, 10_000).unref();
