-- Signed checkpoints of the audit chain, and the database role the control plane runs as.

-- One row per signed chain head: (seq, hash) signed at `at` by the key `key_id`. Append-only like
-- the chain itself, since deleting a checkpoint would hide a rewrite behind it.
CREATE TABLE audit_checkpoints (
  seq bigint NOT NULL,
  hash text NOT NULL,
  at timestamptz NOT NULL,
  key_id text NOT NULL,
  signature text NOT NULL,
  PRIMARY KEY (seq, key_id)
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The privileges the running control plane needs, as a role an operator's login role joins
-- (README: "Database roles"). It may append to the audit trail but never change or remove it:
-- the trigger is the first wall, the missing privilege the second, which holds even if the
-- trigger is dropped by a migration gone wrong. Roles are cluster-wide, so it may exist already.
-- Two databases on one server may migrate at once, hence the exception handler as well.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_app') THEN
    CREATE ROLE airlock_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;
GRANT USAGE ON SCHEMA public TO airlock_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO airlock_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO airlock_app;
-- Tables added by later migrations (run by the owner role) get the same privileges; an append-only
-- one must revoke them in its own migration, as below.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO airlock_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO airlock_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM airlock_app;
-- Migrations are the owner's job: the app only reads which have been applied.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM airlock_app;
