-- Admin identities belong to their tenant: an email is unique per tenant, not across tenants, so a
-- tenant can neither probe nor squat another tenant's addresses; login names the tenant.
-- Written to be re-runnable, like the backfill below.
DROP INDEX IF EXISTS admin_users_email;
CREATE UNIQUE INDEX IF NOT EXISTS admin_users_tenant_email ON admin_users (tenant_id, lower(email));

-- Who created an API key, as `user:<id>`, `api-key:<id>` or NULL (the CLI bootstrap). `created_by_user`
-- is the console user whose current role caps the key, inherited through keys minted by keys;
-- NULL: no user caps it.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS created_by_user uuid REFERENCES admin_users(id);
CREATE INDEX IF NOT EXISTS api_keys_created_by_user ON api_keys (created_by_user) WHERE created_by_user IS NOT NULL;

-- Keys made before this migration: the audit trail names who made each one (`api-key-create`, or
-- `api-key-rotate` naming the new key in meta.replacedBy), so they are capped like newer keys.
UPDATE api_keys k
SET created_by = CASE a.actor_type WHEN 'admin' THEN 'user:' ELSE 'api-key:' END || a.actor_id
FROM audit_events a
WHERE k.created_by IS NULL AND a.tenant_id = k.tenant_id AND a.actor_type IN ('admin', 'api-key') AND a.actor_id IS NOT NULL
  AND ((a.action = 'api-key-create' AND a.target = k.id::text) OR (a.action = 'api-key-rotate' AND a.meta->>'replacedBy' = k.id::text));

UPDATE api_keys k SET created_by_user = u.id
FROM admin_users u
WHERE k.created_by_user IS NULL AND k.created_by = 'user:' || u.id::text AND u.tenant_id = k.tenant_id;

WITH RECURSIVE capped (id, user_id) AS (
  SELECT id, created_by_user FROM api_keys WHERE created_by_user IS NOT NULL
  UNION
  SELECT k.id, c.user_id FROM api_keys k JOIN capped c ON k.created_by = 'api-key:' || c.id::text
)
UPDATE api_keys k SET created_by_user = c.user_id FROM capped c WHERE k.id = c.id AND k.created_by_user IS NULL;
