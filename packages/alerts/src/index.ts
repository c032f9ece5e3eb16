/**
 * Alerts: rules over the audit trail, the engine that raises and delivers them, and the signed
 * webhooks that carry them out, with the sealed destination secrets.
 */
export * from './delivery.ts';
export * from './engine.ts';
export * from './payload.ts';
export * from './rules.ts';
export * from './secret-box.ts';
export * from './signature.ts';
export * from './store.ts';
export * from './webhook.ts';
