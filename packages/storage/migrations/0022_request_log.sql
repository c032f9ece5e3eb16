-- The API request log: one row per admin, API-consumer and agent request, never its body, query
-- string or credentials. Separate from the audit trail (which records privileged actions and is
-- hash-chained); rows here are pruned after each tenant's retention. A request whose caller was
-- never authenticated has no tenant, and only the system scope sees it.
CREATE TABLE request_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL,
  -- No foreign key: a batch is written in one statement, and one bad row must not lose the rest.
  tenant_id uuid,
  caller_type text NOT NULL CHECK (caller_type IN ('user', 'api-key', 'oauth-client', 'agent', 'anonymous')),
  caller_id text,
  procedure text NOT NULL,
  method text NOT NULL,
  status integer NOT NULL,
  outcome text NOT NULL,
  latency_ms integer NOT NULL,
  source_ip text,
  user_agent text,
  request_id uuid NOT NULL
);
CREATE INDEX request_log_tenant_at ON request_log (tenant_id, at DESC, id DESC);
CREATE INDEX request_log_at ON request_log (at);

-- Per tenant: how long its request log is kept. A tenant without a row keeps the default (30 days).
CREATE TABLE request_log_settings (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  retention_days integer NOT NULL CHECK (retention_days BETWEEN 1 AND 3650),
  updated_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE request_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_log FORCE ROW LEVEL SECURITY;
CREATE POLICY request_log_tenant ON request_log USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY request_log_system ON request_log USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE request_log_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_log_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY request_log_settings_tenant ON request_log_settings USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY request_log_settings_system ON request_log_settings USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
