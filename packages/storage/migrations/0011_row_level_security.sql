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

-- Every other table with a tenant_id column: api_keys, agents, enrollment_tokens, request_nonces,
-- integrations, runs, audit_events, integration_schedules, agent_groups, agent_group_members,
-- grants, and any that an earlier-numbered migration added. Audit events without a tenant
-- (refused anonymous requests) are system rows. DDL takes no bind parameters, so the names, which
-- come from the catalog, are quoted as identifiers with %I.
DO $$
DECLARE
  t text;
BEGIN
  FOR t IN
    SELECT c.table_name FROM information_schema.columns c
    JOIN information_schema.tables tb ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
    WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND tb.table_type = 'BASE TABLE'
    ORDER BY c.table_name
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY %I ON %I USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant())', t || '_tenant', t);
    EXECUTE format('CREATE POLICY %I ON %I USING (airlock_system_scope()) WITH CHECK (airlock_system_scope())', t || '_system', t);
  END LOOP;
END
$$;

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
