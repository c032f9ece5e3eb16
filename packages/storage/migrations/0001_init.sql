-- Airlock control plane schema, version 1. Every row belongs to a tenant.
CREATE TABLE tenants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Admin credentials for automation and CLIs. Only a SHA-256 of the high-entropy secret is kept.
CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  prefix text NOT NULL UNIQUE,
  secret_sha256 text NOT NULL,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'auditor')),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at timestamptz
);

CREATE TABLE agents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  public_key text NOT NULL UNIQUE,
  hostname text NOT NULL,
  version text NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  enrolled_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz
);
CREATE INDEX agents_tenant ON agents (tenant_id);

-- One-time enrollment tokens, stored hashed; redeemed by a single conditional UPDATE.
CREATE TABLE enrollment_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  token_sha256 text NOT NULL UNIQUE,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  agent_id uuid REFERENCES agents(id),
  CHECK (expires_at <= created_at + interval '30 minutes')
);

-- Nonces of signed agent requests, kept for the clock-skew window so a replay is refused.
CREATE TABLE request_nonces (
  agent_id uuid NOT NULL REFERENCES agents(id),
  nonce text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (agent_id, nonce)
);
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);

CREATE TABLE integrations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  agent_id uuid NOT NULL REFERENCES agents(id),
  name text NOT NULL,
  version integer NOT NULL DEFAULT 1,
  spec jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

-- A run keeps the exact spec it was dispatched with.
CREATE TABLE runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  integration_id uuid NOT NULL REFERENCES integrations(id),
  integration_version integer NOT NULL,
  agent_id uuid NOT NULL REFERENCES agents(id),
  spec jsonb NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  requested_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  claimed_at timestamptz,
  finished_at timestamptz,
  error_class text,
  report jsonb
);
CREATE INDEX runs_queue ON runs (agent_id, created_at) WHERE status = 'queued';
CREATE INDEX runs_tenant ON runs (tenant_id, created_at DESC);

-- The audit trail: append-only and hash-chained. The head row serializes appends.
CREATE TABLE audit_events (
  seq bigint PRIMARY KEY,
  tenant_id uuid,
  at timestamptz NOT NULL,
  actor_type text NOT NULL,
  actor_id text,
  action text NOT NULL,
  target text,
  outcome text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  source_ip text,
  meta jsonb NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);

CREATE TABLE audit_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq bigint NOT NULL,
  hash text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
