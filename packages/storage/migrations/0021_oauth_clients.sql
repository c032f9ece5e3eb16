-- OAuth 2.0 clients for API consumers (client credentials grant). A client belongs to a tenant and
-- carries a role narrowed like an API key's (permissions), optionally to read-only permissions and
-- to named integrations. It authenticates with a secret (only its SHA-256 is kept: the secret is
-- 256 random bits, so a slow hash buys nothing) or with a JWT signed by a key of its registered JWKS.
CREATE TABLE oauth_clients (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  client_id text NOT NULL UNIQUE,
  name text NOT NULL,
  auth_method text NOT NULL CHECK (auth_method IN ('client_secret_basic', 'private_key_jwt')),
  secret_sha256 text,
  jwks jsonb,
  role text NOT NULL,
  permissions text[],
  integrations uuid[],
  read_only boolean NOT NULL DEFAULT false,
  -- Carried in every access token; a rotation moves it on, so tokens issued before stop working.
  token_generation integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text,
  rotated_at timestamptz,
  disabled_at timestamptz,
  last_used_at timestamptz,
  UNIQUE (tenant_id, name),
  CHECK ((auth_method = 'client_secret_basic') = (secret_sha256 IS NOT NULL)),
  CHECK ((auth_method = 'private_key_jwt') = (jwks IS NOT NULL))
);

-- The `jti` of every client assertion (private_key_jwt) until it expires, so none is accepted twice.
CREATE TABLE oauth_assertion_jtis (
  client_id uuid NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  jti text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX oauth_assertion_jtis_expires ON oauth_assertion_jtis (expires_at);

ALTER TABLE oauth_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY oauth_clients_tenant ON oauth_clients USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY oauth_clients_system ON oauth_clients USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE oauth_assertion_jtis ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_assertion_jtis FORCE ROW LEVEL SECURITY;
CREATE POLICY oauth_assertion_jtis_tenant ON oauth_assertion_jtis USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY oauth_assertion_jtis_system ON oauth_assertion_jtis USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
