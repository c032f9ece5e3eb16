/**
 * The webhook body: Slack-compatible (`text` for notifications, `blocks` for the message) so a Slack
 * or Mattermost incoming webhook shows it as is, plus an `airlock` object with the structured fields
 * for receivers that act on alerts. Only alert metadata: never secrets or file contents.
 */
import { type AlertKind, type AlertSeverity, type AlertState, truncateText } from '@airlock/protocol';

export interface AlertView {
  id: string;
  tenantId: string;
  /** `test` only in the payload `alertDestinations.test` sends. */
  kind: AlertKind | 'test';
  severity: AlertSeverity;
  state: AlertState;
  target: string | null;
  summary: string;
  details: Record<string, unknown>;
  count: number;
  firstSeenAt: string;
  lastSeenAt: string;
}

/** Slack mrkdwn treats `<...>` as links and mentions (`<!channel>`); event text must not ping anyone. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const ICONS: Record<AlertSeverity, string> = { info: ':information_source:', warning: ':warning:', critical: ':rotating_light:' };

export function alertPayload(alert: AlertView, delivery: { id: string; test: boolean }): string {
  const title = `${delivery.test ? '[test] ' : ''}[${alert.severity}] ${alert.kind}: ${alert.summary}`;
  const field = (name: string, value: string) => ({ type: 'mrkdwn', text: `*${name}*\n${escapeMrkdwn(value)}` });
  return JSON.stringify({
    text: escapeMrkdwn(title),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: truncateText(`${delivery.test ? 'Test: ' : ''}Airlock alert: ${alert.kind}`, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: `${ICONS[alert.severity]} ${escapeMrkdwn(alert.summary)}` } },
      {
        type: 'section',
        fields: [
          field('Severity', alert.severity),
          field('State', alert.state),
          field('Target', alert.target ?? '-'),
          field('Count', String(alert.count)),
          field('First seen', alert.firstSeenAt),
          field('Last seen', alert.lastSeenAt),
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `alert ${alert.id} · delivery ${delivery.id}` }] },
    ],
    airlock: { version: 1, deliveryId: delivery.id, test: delivery.test, alert },
  });
}
