-- Alerts: derived from the audit trail and from periodic checks, delivered to per-tenant webhooks
-- through a durable outbox.

-- A webhook a tenant's alerts go to. The URL (Slack-style URLs carry a credential in their path)
-- and the HMAC secret are sealed with the control plane's alert key (AES-256-GCM, bound to the
-- row id); only the origin is kept in clear, for listings and audit.
CREATE TABLE alert_destinations (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  name text NOT NULL,
  origin text NOT NULL,
  url_sealed text NOT NULL,
  secret_sealed text NOT NULL,
  -- Empty: every kind.
  kinds text[] NOT NULL DEFAULT '{}',
  min_severity text NOT NULL CHECK (min_severity IN ('info', 'warning', 'critical')),
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

-- One alert per condition: a repeat of the same dedupe key (kind + target) within the dedupe
-- window, or while a standing condition is unresolved, increments `count` instead of a new row.
CREATE TABLE alerts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  kind text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  dedupe_key text NOT NULL,
  target text,
  summary text NOT NULL,
  details jsonb NOT NULL,
  state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
  count integer NOT NULL DEFAULT 1,
  first_seen_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  acknowledged_at timestamptz,
  acknowledged_by text,
  resolved_at timestamptz,
  resolved_by text
);
CREATE INDEX alerts_dedupe ON alerts (tenant_id, dedupe_key, last_seen_at DESC) WHERE state <> 'resolved';
CREATE INDEX alerts_tenant ON alerts (tenant_id, last_seen_at DESC);

-- The outbox: one row per alert and destination, claimed with a lease so a crash mid-send is
-- retried after a restart. No payload is stored: it is rebuilt from the alert at each attempt.
CREATE TABLE alert_deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  alert_id uuid NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  destination_id uuid NOT NULL REFERENCES alert_destinations(id) ON DELETE CASCADE,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'throttled')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  last_status integer,
  last_error text,
  created_at timestamptz NOT NULL,
  finished_at timestamptz
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_throttle ON alert_deliveries (destination_id, created_at) WHERE state <> 'throttled';

-- The engine's place in the audit trail and when the periodic checks last ran. One row, locked
-- by the replica that ticks, so every event is evaluated once. It starts at the current head:
-- history from before alerts existed raises nothing.
CREATE TABLE alert_engine (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  audit_seq bigint NOT NULL,
  checked_at timestamptz
);
INSERT INTO alert_engine (audit_seq) SELECT seq FROM audit_head;

-- Burst rules count recent events of one action for one tenant. Partial, so the chain's other
-- events pay nothing for it; a new burst rule's action needs a migration extending it.
CREATE INDEX audit_events_bursts ON audit_events (tenant_id, action, at) WHERE action IN ('agent-request-refused', 'login-failed');
