-- Admin identities belong to their tenant: an email is unique per tenant, not across tenants, so a
-- tenant can neither probe nor squat another tenant's addresses; login names the tenant.
DROP INDEX admin_users_email;
CREATE UNIQUE INDEX admin_users_tenant_email ON admin_users (tenant_id, lower(email));

-- Who created an API key, as `user:<id>`, `api-key:<id>` or NULL (the CLI bootstrap, or a key made
-- before this migration). `created_by_user` is the console user whose current role caps the key,
-- inherited through keys minted by keys; NULL: no user caps it.
ALTER TABLE api_keys ADD COLUMN created_by text;
ALTER TABLE api_keys ADD COLUMN created_by_user uuid REFERENCES admin_users(id);
CREATE INDEX api_keys_created_by_user ON api_keys (created_by_user) WHERE created_by_user IS NOT NULL;
