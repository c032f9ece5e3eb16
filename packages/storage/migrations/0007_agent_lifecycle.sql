-- Agent key rotation and group dispatch.

-- Keys an agent used before a rotation. A request signed with one of them is refused and audited
-- as `retired key`, and a rotation may not bring one back.
CREATE TABLE agent_retired_keys (
  agent_id uuid NOT NULL REFERENCES agents(id),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  public_key text NOT NULL UNIQUE,
  retired_at timestamptz NOT NULL,
  PRIMARY KEY (agent_id, public_key)
);
ALTER TABLE agents ADD COLUMN key_rotated_at timestamptz;
-- Set by an admin; the agent sees it in its heartbeat answer and rotates.
ALTER TABLE agents ADD COLUMN key_rotation_requested_at timestamptz;

-- An integration targets one agent or an agent group; a group's run goes to any healthy member,
-- which is recorded on the run when it claims it.
ALTER TABLE integrations ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE integrations ADD COLUMN group_id uuid REFERENCES agent_groups(id);
ALTER TABLE integrations ADD CONSTRAINT integrations_one_target CHECK ((agent_id IS NULL) <> (group_id IS NULL));

ALTER TABLE runs ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE runs ADD COLUMN group_id uuid REFERENCES agent_groups(id);
ALTER TABLE runs ADD CONSTRAINT runs_target CHECK (agent_id IS NOT NULL OR group_id IS NOT NULL);
CREATE INDEX runs_group_queue ON runs (group_id, created_at) WHERE status = 'queued';
