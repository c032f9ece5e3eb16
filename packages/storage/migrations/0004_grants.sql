-- Control-plane scopes: grants of an action on a resource to an agent or an agent group.
-- Anything not granted is denied; the agent's local policy stays the ceiling behind them.

CREATE TABLE agent_groups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE agent_group_members (
  group_id uuid NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
  agent_id uuid NOT NULL REFERENCES agents(id),
  PRIMARY KEY (group_id, agent_id)
);
CREATE INDEX agent_group_members_agent ON agent_group_members (agent_id);

-- `resource` is the canonical text from formatResource, so equal grants compare equal as text.
-- `subject_id` names an agent or a group of the same tenant; the application checks which.
CREATE TABLE grants (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  subject_type text NOT NULL CHECK (subject_type IN ('agent', 'group')),
  subject_id uuid NOT NULL,
  action text NOT NULL CHECK (action IN ('list', 'read', 'write', 'execute', 'delete')),
  resource text NOT NULL,
  expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL
);
CREATE INDEX grants_subject ON grants (tenant_id, subject_type, subject_id);
