/**
 * The control plane's tRPC router, its procedures and the HTTP transport, with what
 * `apps/control-plane` needs from storage, authentication, dispatch and alerts to mount them with
 * config. Agents, the console and CLIs import `AppRouter` from `@airlock/api/router`, as a type only.
 */
export { appRouter, type AppRouter } from './router.ts';
export { createHttpHandler, createMetricsHandler, type HttpOptions } from './http.ts';
export { checkReadiness, type Readiness } from './health.ts';
export { createMetrics, type Metrics, processMetrics } from '@airlock/storage';
export { DEFAULT_MAX_BATCH_SIZE, DEFAULT_RATE_LIMITS, pruneRateLimits, RateLimits, type LimitKind, type RateLimit, type RateLimitSettings } from '@airlock/auth';
export { createStaticHandler, securityHeaders, type StaticHandler } from './static-files.ts';
export { createContext, type Context, type RequestFacts, type ServerDeps } from './context.ts';
export { AGENT_KEY_CHANNEL, Dispatcher, type DispatcherOptions, notifyAgents, WAKE_CHANNEL } from '@airlock/dispatch';
export { Scheduler, type FireOutcome, type SchedulerOptions, latestFireTime, nextFireTime, validateSchedule } from '@airlock/dispatch';
export { connectPostgres, openPglite, type Database, type Listener, type NotificationHandlers, type PostgresOptions, type Queryable, RequestAbandoned } from '@airlock/storage';
export { migrate, pendingMigrations } from '@airlock/storage';
export { bootstrapTenant } from './bootstrap.ts';
export { AgentKeyCache, pruneNonces } from '@airlock/auth';
export { permissions, roles, type Permission, type Role } from '@airlock/auth';
export { appendAudit, chainKey, listAuditEvents, readChain, readChainPages, recordAudit, writeAuditRecords, type AuditFilter } from '@airlock/storage';
export {
  chainCheckpoints,
  createCheckpoint,
  latestChainCheckpoint,
  legacyHead,
  listCheckpoints,
  verifyStoredAudit,
  type ChainCheckpoint,
  type StoredAuditVerification,
} from '@airlock/storage';
export { signerFromSecretKey, verifierFor, type Signer } from '@airlock/storage';
export { createAdminUserInTenant, listAdminUsers, tenantIdOf, unlockAdminUser, type AdminUser } from '@airlock/auth';
export { defaultAuthSettings, type AuthSettings } from '@airlock/auth';
export { pruneSessions } from '@airlock/auth';
export { pruneLoginThrottle } from '@airlock/auth';
export { pruneLoginSteps } from '@airlock/auth';
export { checkPasswordPolicy, MIN_PASSWORD_LENGTH } from '@airlock/auth';
export type { AdminPrincipal } from '@airlock/auth';
export { AlertEngine, defaultThresholds, type AlertEngineOptions, type AlertThresholds, type TickResult } from '@airlock/alerts';
export { secretBoxFromKey, type SecretBox } from '@airlock/alerts';
export { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signAlertBody, verifyAlertSignature, type SignatureCheck } from '@airlock/alerts';
export { parseWebhookUrl, refusedAddress, type WebhookOptions } from '@airlock/alerts';
export { recordKeyRotation } from '@airlock/storage';
export { generateTokenKeyPem, jwksOf, tokenKeysFromPems, type TokenKeys } from '@airlock/auth';
export { type OAuthSettings } from '@airlock/auth';
export { pruneAssertionJtis } from '@airlock/auth';
export { DEFAULT_REQUEST_LOG_RETENTION_DAYS, pruneRequestLog, RequestLogWriter, type RequestLogEntry, type RequestLogOptions, type RequestLogStats } from './request-log.ts';
export { clientJwks } from '@airlock/auth';
