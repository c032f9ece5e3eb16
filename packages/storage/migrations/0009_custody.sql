-- Custody: security events agents report when they refuse something, and the signed rotations of
-- the control plane's key that agents follow from the key they pinned.

-- Metadata only: what was refused and why, never the refused job. `id` is the agent's own, so a
-- report sent twice (an outbox flush after a lost answer) is stored once.
CREATE TABLE agent_security_events (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  agent_id uuid NOT NULL REFERENCES agents(id),
  kind text NOT NULL,
  at timestamptz NOT NULL,
  run_id uuid,
  reason text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_security_events_agent ON agent_security_events (tenant_id, agent_id, at);

-- Each row: the new key, and a statement signed by the key it replaces. Append-only, since an agent
-- that has not yet followed a rotation needs every step from its pin.
CREATE TABLE control_plane_key_rotations (
  seq bigserial PRIMARY KEY,
  previous_key text NOT NULL,
  next_key text NOT NULL UNIQUE,
  statement jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER control_plane_key_rotations_no_update BEFORE UPDATE OR DELETE ON control_plane_key_rotations
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON control_plane_key_rotations FROM airlock_app;
