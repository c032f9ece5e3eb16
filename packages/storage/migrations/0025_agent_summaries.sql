-- The metadata summary each agent sends in its heartbeat (version, proxy use, last error, run and
-- delivery counters): one row per agent, replaced by its latest heartbeat. Kept apart from `agents`
-- so a heartbeat never rewrites the agent's own row. Re-exported per agent in the metrics and shown
-- in the console; it holds no path, file name or secret (the protocol's schema allows none).
CREATE TABLE agent_summaries (
  agent_id uuid PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  summary jsonb NOT NULL,
  reported_at timestamptz NOT NULL
);
CREATE INDEX agent_summaries_tenant ON agent_summaries (tenant_id);

ALTER TABLE agent_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_summaries FORCE ROW LEVEL SECURITY;
CREATE POLICY agent_summaries_tenant ON agent_summaries USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY agent_summaries_system ON agent_summaries USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
