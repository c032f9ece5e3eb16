-- Row-level security: the second wall behind the application's tenant checks.
--
-- Every table that holds tenant data carries tenant_id and two policies:
--   <table>_tenant  rows of the tenant named by the transaction-local setting airlock.tenant_id;
--   <table>_system  every row, while airlock.system is 'on' (authentication lookups, the scheduler,
--                   bootstrap, migrations, whole-chain audit verification: explicit and narrow).
-- With neither setting, a role subject to RLS sees and changes nothing. The server sets them per
-- transaction (`Database.forTenant` / `forSystem`) and runs tenant work as airlock_app, so the
-- policies hold even when it connects as a superuser (the embedded PGlite) or as the owner (FORCE).
-- The settings are a guard against application mistakes, not against someone who can send
-- arbitrary SQL as the app role: that role could set them too.
--
-- A table added later with a tenant_id column needs the same: the test storage/rls.integration.test.ts
-- fails for any such table without RLS enabled, forced, and a policy.

CREATE FUNCTION airlock_current_tenant() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT NULLIF(current_setting('airlock.tenant_id', true), '')::uuid
$$;
CREATE FUNCTION airlock_system_scope() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('airlock.system', true), '') = 'on'
$$;

-- Tenant data that had no tenant_id: group memberships and agent request nonces.
ALTER TABLE agent_group_members ADD COLUMN tenant_id uuid REFERENCES tenants(id);
UPDATE agent_group_members m SET tenant_id = g.tenant_id FROM agent_groups g WHERE g.id = m.group_id;
ALTER TABLE agent_group_members ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE request_nonces ADD COLUMN tenant_id uuid REFERENCES tenants(id);
UPDATE request_nonces n SET tenant_id = a.tenant_id FROM agents a WHERE a.id = n.agent_id;
ALTER TABLE request_nonces ALTER COLUMN tenant_id SET NOT NULL;

-- A member's group and agent belong to the member row's tenant, whatever the application sends.
ALTER TABLE agents ADD CONSTRAINT agents_id_tenant UNIQUE (id, tenant_id);
ALTER TABLE agent_groups ADD CONSTRAINT agent_groups_id_tenant UNIQUE (id, tenant_id);
ALTER TABLE agent_group_members ADD CONSTRAINT agent_group_members_group_tenant
  FOREIGN KEY (group_id, tenant_id) REFERENCES agent_groups (id, tenant_id) ON DELETE CASCADE;
ALTER TABLE agent_group_members ADD CONSTRAINT agent_group_members_agent_tenant
  FOREIGN KEY (agent_id, tenant_id) REFERENCES agents (id, tenant_id);

-- The tenants table is keyed by id itself.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_tenant ON tenants USING (id = airlock_current_tenant()) WITH CHECK (id = airlock_current_tenant());
CREATE POLICY tenants_system ON tenants USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant ON api_keys USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY api_keys_system ON api_keys USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;
CREATE POLICY agents_tenant ON agents USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY agents_system ON agents USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE enrollment_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrollment_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY enrollment_tokens_tenant ON enrollment_tokens USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY enrollment_tokens_system ON enrollment_tokens USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE request_nonces ENABLE ROW LEVEL SECURITY;
ALTER TABLE request_nonces FORCE ROW LEVEL SECURITY;
CREATE POLICY request_nonces_tenant ON request_nonces USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY request_nonces_system ON request_nonces USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE integrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE integrations FORCE ROW LEVEL SECURITY;
CREATE POLICY integrations_tenant ON integrations USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY integrations_system ON integrations USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE runs FORCE ROW LEVEL SECURITY;
CREATE POLICY runs_tenant ON runs USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY runs_system ON runs USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

-- Events without a tenant (refused anonymous requests) are system rows.
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_tenant ON audit_events USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY audit_events_system ON audit_events USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE integration_schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE integration_schedules FORCE ROW LEVEL SECURITY;
CREATE POLICY integration_schedules_tenant ON integration_schedules USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY integration_schedules_system ON integration_schedules USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE agent_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_groups FORCE ROW LEVEL SECURITY;
CREATE POLICY agent_groups_tenant ON agent_groups USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY agent_groups_system ON agent_groups USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE agent_group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_group_members FORCE ROW LEVEL SECURITY;
CREATE POLICY agent_group_members_tenant ON agent_group_members USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY agent_group_members_system ON agent_group_members USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

ALTER TABLE grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE grants FORCE ROW LEVEL SECURITY;
CREATE POLICY grants_tenant ON grants USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY grants_system ON grants USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());

-- Tenant-scoped transactions switch to airlock_app. A server that connects as the (non-superuser)
-- owner needs membership for that; a superuser has it implicitly, and the README's login role has it
-- by creation. Without the right to grant it, the operator grants it (README: "Database roles").
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AND NOT pg_has_role(current_user, 'airlock_app', 'MEMBER') THEN
    GRANT airlock_app TO CURRENT_USER;
  END IF;
EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
  RAISE NOTICE 'could not make the migrating role a member of airlock_app';
END
$$;
