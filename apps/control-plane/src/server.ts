/** Wires config, storage and transport: opens the database, migrates, and serves the API. */
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import {
  AlertEngine,
  connectPostgres,
  createCheckpoint,
  createHttpHandler,
  type Database,
  defaultAuthSettings,
  Dispatcher,
  migrate,
  openPglite,
  pruneNonces,
  pruneRateLimits,
  pruneLoginThrottle,
  pruneAssertionJtis,
  pruneLoginSteps,
  pruneRequestLog,
  pruneSessions,
  RequestLogWriter,
  Scheduler,
  type ServerDeps,
  type Signer,
  createStaticHandler,
  createMetricsHandler,
} from '@airlock/api';
import { loadAlertKey, loadOAuthKeys, loadSigner, type ServerConfig } from './config.ts';

/**
 * The command opening the database, and what it should do instead while another process holds the
 * embedded one (a phrase that follows "stop it first"), e.g. the remote command that asks the server.
 */
export interface DatabaseUse {
  command: string;
  instead?: string;
}

export async function openDatabase(config: Pick<ServerConfig, 'databaseUrl' | 'dataDir'> & Partial<Pick<ServerConfig, 'pool'>>, use: DatabaseUse): Promise<Database> {
  if (config.databaseUrl) return connectPostgres(config.databaseUrl, config.pool);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  return openPglite(config.dataDir, {
    command: use.command,
    refusal: (holder) =>
      `the embedded database in ${config.dataDir} is in use by ${holder.command ?? 'another process'} (pid ${holder.pid}) and only one process may open it: ` +
      `stop it first${use.instead === undefined ? '' : `, ${use.instead}`}`,
  });
}

export interface RunningServer {
  url: string;
  /** The metrics listener's base URL (`/metrics`, `/healthz`, `/readyz`); null when none is configured. */
  metricsUrl: string | null;
  db: Database;
  close(): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const logger = pino({ level: config.logLevel, base: { service: 'control-plane' } });
  // Before the database: a key file with loose permissions stops the start here.
  const signer = await loadSigner(config);
  const secretBox = await loadAlertKey(config);
  const oauthKeys = await loadOAuthKeys(config);
  const db = await openDatabase(config, { command: 'airlock serve', instead: 'or give this server its own AIRLOCK_DATA_DIR' });
  const { applied } = await migrate(db);
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  // Wake-ups arrive through the database (LISTEN/NOTIFY), from this replica and every other.
  const dispatcher = new Dispatcher({ db, logger });
  await dispatcher.start();
  const deps: ServerDeps = {
    db,
    dispatcher,
    now: () => new Date(),
    logger,
    signer,
    publicUrl: config.publicUrl,
    // Only the cookie flag is configured here: the scrypt cost and lockout stay at their defaults.
    auth: { secureCookies: config.tls !== null },
    alerts: { secretBox, webhook: config.alerts.webhook },
    // The issuer is the public URL; without one it is the listen URL, known once the port is bound.
    oauth: { issuer: config.publicUrl ?? '', keys: oauthKeys, tokenTtlSeconds: config.oauth.tokenTtlSeconds },
  };
  const requestLog = new RequestLogWriter(db, logger, { maxQueue: config.requestLogQueue });
  const consoleFiles = config.consoleDir ? await createStaticHandler(config.consoleDir) : undefined;
  const handler = createHttpHandler(deps, {
    maxBodyBytes: config.maxBodyBytes,
    maxBatchSize: config.maxBatchSize,
    rateLimits: config.rateLimits,
    console: consoleFiles,
    requestLog,
  });
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    handler(req, res).catch((error: unknown) => {
      logger.error({ error: error instanceof Error ? error.message : String(error) }, 'request handler failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
  const server = config.tls
    ? https.createServer({ cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) }, listener)
    : http.createServer(listener);
  // Long-polls hold a request open for up to 30 s.
  server.requestTimeout = 60_000;
  server.headersTimeout = 20_000;
  // An agent asks again within a long-poll's time (30 s at most): its connection stays open between
  // requests, so a fleet costs no TCP handshake per poll, and a client never reuses a socket just
  // as the server closes it for idleness.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.port, host: config.host, backlog: config.listenBacklog }, resolve);
  });
  const { port } = server.address() as AddressInfo;
  const url = `${config.tls ? 'https' : 'http'}://${config.host}:${port}`;
  const metricsServer = config.metrics ? await listenMetrics(config.metrics, createMetricsHandler(deps), logger) : null;
  const metricsUrl = metricsServer ? `http://${config.metrics?.host ?? '127.0.0.1'}:${(metricsServer.address() as AddressInfo).port}` : null;
  // Known only now that the port is bound (AIRLOCK_PORT=0).
  deps.publicUrl ??= url;
  if (deps.oauth && deps.oauth.issuer === '') deps.oauth.issuer = url;
  // Background work spans every tenant: it runs in the explicit system scope.
  const system = db.forSystem();
  const prune = setInterval(() => {
    pruneNonces(db, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'nonce pruning failed'));
    pruneRateLimits(db, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'rate-limit pruning failed'));
    pruneSessions(system, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'session pruning failed'));
    pruneLoginThrottle(system, defaultAuthSettings, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'login throttle pruning failed'));
    pruneLoginSteps(system, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'pending login pruning failed'));
    pruneAssertionJtis(system, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'client assertion pruning failed'));
    pruneRequestLog(system, new Date()).catch((error: unknown) => logger.warn({ error: String(error) }, 'request log pruning failed'));
  }, 60_000);
  prune.unref();
  const scheduler = new Scheduler({ db, dispatcher, tickMs: config.schedulerTickMs, logger });
  scheduler.start();
  // The served certificate (the first of the chain) is the one whose expiry is watched.
  const certificate = config.tls ? new X509Certificate(await readFile(config.tls.certFile)) : null;
  const alerts = new AlertEngine({
    db: system,
    secretBox,
    tickMs: config.alerts.tickMs,
    checkIntervalMs: config.alerts.checkIntervalMs,
    thresholds: config.alerts.thresholds,
    policy: config.alerts.policy,
    delivery: { maxAttempts: config.alerts.maxAttempts, webhook: config.alerts.webhook },
    tlsCertificate: certificate ? { validTo: new Date(certificate.validTo), fingerprint256: certificate.fingerprint256 } : null,
    logger,
  });
  alerts.start();
  const checkpoints = startCheckpoints(system, signer, config.checkpointIntervalMs, logger);
  logger.info({ url, metricsUrl, database: db.kind, keyId: signer.keyId, console: config.consoleDir }, 'control plane listening');
  return {
    url,
    metricsUrl,
    db,
    async close() {
      clearInterval(prune);
      if (metricsServer) {
        metricsServer.closeAllConnections();
        await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      }
      await checkpoints.stop();
      await scheduler.stop();
      await alerts.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await requestLog.close();
      await dispatcher.close();
      await db.close();
    },
  };
}

/** The metrics listener: plain HTTP on its own address (see AIRLOCK_METRICS_PORT). */
async function listenMetrics(address: { host: string; port: number }, handler: ReturnType<typeof createMetricsHandler>, logger: pino.Logger): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    handler(req, res).catch((error: unknown) => {
      logger.error({ error: error instanceof Error ? error.message : String(error) }, 'metrics request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: address.port, host: address.host }, resolve);
  });
  return server;
}

/** Signs the audit head every `intervalMs` when it moved; a slow signing skips ticks rather than piling them up. */
function startCheckpoints(db: Database, signer: Signer, intervalMs: number, logger: pino.Logger) {
  let busy: Promise<void> | null = null;
  const timer = setInterval(() => {
    busy ??= createCheckpoint(db, signer)
      .then(
        (result) => {
          if (result?.created) logger.info({ number: result.checkpoint.number, chains: result.checkpoint.size, keyId: signer.keyId }, 'audit checkpoint signed');
        },
        (error: unknown) => logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'audit checkpoint failed'),
      )
      .finally(() => {
        busy = null;
      });
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await busy;
    },
  };
}
