-- Signed agent updates. A release is a manifest signed by the release key (which the control plane
-- does not hold) and its artifact, stored here in fixed-size chunks so agents fetch it through the
-- signed control channel. A rollout offers one release to a tenant's agents in two rings: a canary
-- group first, then the rest; a ring whose failed share passes the threshold halts it.
CREATE TABLE releases (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  version text NOT NULL,
  platform text NOT NULL,
  -- The signed statement as published: payload text and base64 signature, handed to agents unchanged.
  manifest text NOT NULL,
  signature text NOT NULL,
  size bigint NOT NULL CHECK (size > 0),
  sha256 text NOT NULL,
  downgrade_allowed boolean NOT NULL,
  state text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'published')),
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  UNIQUE (tenant_id, version, platform)
);

CREATE TABLE release_chunks (
  release_id uuid NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  chunk_index integer NOT NULL CHECK (chunk_index >= 0),
  data bytea NOT NULL,
  PRIMARY KEY (release_id, chunk_index)
);

CREATE TABLE rollouts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  release_id uuid NOT NULL REFERENCES releases(id),
  canary_group_id uuid REFERENCES agent_groups(id),
  starts_at timestamptz NOT NULL,
  ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
  halt_failure_rate double precision NOT NULL CHECK (halt_failure_rate >= 0 AND halt_failure_rate <= 1),
  downgrade boolean NOT NULL,
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'halted', 'completed')),
  halted_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
-- One live rollout per tenant: two would offer an agent two versions at once.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (tenant_id) WHERE state = 'active';

-- Each targeted agent's progress, with its ring fixed when the rollout was created.
CREATE TABLE rollout_agents (
  rollout_id uuid NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
  agent_id uuid NOT NULL REFERENCES agents(id),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  ring text NOT NULL CHECK (ring IN ('canary', 'rest')),
  state text NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'offered', 'installed', 'failed')),
  from_version text,
  reason text,
  offered_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rollout_id, agent_id)
);
CREATE INDEX rollout_agents_agent ON rollout_agents (agent_id);

ALTER TABLE releases ENABLE ROW LEVEL SECURITY;
ALTER TABLE releases FORCE ROW LEVEL SECURITY;
CREATE POLICY releases_tenant ON releases USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY releases_system ON releases USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE release_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE release_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY release_chunks_tenant ON release_chunks USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY release_chunks_system ON release_chunks USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE rollouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollouts FORCE ROW LEVEL SECURITY;
CREATE POLICY rollouts_tenant ON rollouts USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY rollouts_system ON rollouts USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE rollout_agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE rollout_agents FORCE ROW LEVEL SECURITY;
CREATE POLICY rollout_agents_tenant ON rollout_agents USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY rollout_agents_system ON rollout_agents USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
