-- Why a failed run failed, as its agent words it: metadata only (a credential's name, a host and
-- its key fingerprint, a policy claim), never file content or secret values. Bounded like the
-- report field it comes from.
ALTER TABLE runs ADD COLUMN failure_reason text CHECK (failure_reason IS NULL OR char_length(failure_reason) <= 500);

-- An integration can be disabled (kept, neither dispatched nor scheduled) and deleted. Deleting is
-- soft: its runs and the audit trail keep pointing at the row, and its name is free for a new one.
ALTER TABLE integrations ADD COLUMN disabled_at timestamptz;
ALTER TABLE integrations ADD COLUMN deleted_at timestamptz;
ALTER TABLE integrations DROP CONSTRAINT integrations_tenant_id_name_key;
CREATE UNIQUE INDEX integrations_live_name ON integrations (tenant_id, name) WHERE deleted_at IS NULL;

-- Every saved version of every integration, so `integration history` can show what changed when.
-- Versions saved before this table existed are represented by the one each integration has now.
CREATE TABLE integration_versions (
  integration_id uuid NOT NULL REFERENCES integrations(id),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  version integer NOT NULL,
  spec jsonb NOT NULL,
  saved_by text,
  saved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (integration_id, version)
);
INSERT INTO integration_versions (integration_id, tenant_id, version, spec, saved_by, saved_at)
  SELECT id, tenant_id, version, spec, NULL, updated_at FROM integrations;
ALTER TABLE integration_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY integration_versions_tenant ON integration_versions
  USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY integration_versions_system ON integration_versions
  USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

-- An enrollment token an admin revoked before it was used.
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at timestamptz;
