/** Alerts and their webhook destinations: the kinds, severities and admin inputs. */
import { z } from 'zod';
import { displayText } from './text.ts';

/** What can raise an alert. Adding a kind here needs a rule in packages/alerts/src. */
export const alertKinds = [
  'scope-denied',
  'policy-violation',
  'bad-signature-burst',
  'login-failure-burst',
  'agent-offline',
  'run-failed',
  'api-key-expiring',
  'tls-certificate-expiring',
] as const;
export type AlertKind = (typeof alertKinds)[number];

/** In increasing order. */
export const alertSeverities = ['info', 'warning', 'critical'] as const;
export type AlertSeverity = (typeof alertSeverities)[number];

export const alertStates = ['open', 'acknowledged', 'resolved'] as const;
export type AlertState = (typeof alertStates)[number];

export const listAlertsInput = z.strictObject({
  /** `unresolved` is open or acknowledged. Default: every state. */
  state: z.enum([...alertStates, 'unresolved']).optional(),
  kind: z.enum(alertKinds).optional(),
  limit: z.number().int().min(1).max(500).default(100),
});

export const createAlertDestinationInput = z.strictObject({
  name: displayText({ min: 1, max: 100 }),
  /** https, or http to loopback; checked again (addresses included) at every send. */
  url: displayText({ min: 1, max: 2048 }),
  /** Empty: every kind. */
  kinds: z.array(z.enum(alertKinds)).max(alertKinds.length).default([]),
  minSeverity: z.enum(alertSeverities).default('warning'),
  enabled: z.boolean().default(true),
});
