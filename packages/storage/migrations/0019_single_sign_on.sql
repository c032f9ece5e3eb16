-- Single sign-on through OpenID Connect, per tenant: providers (client secret sealed like webhook
-- secrets), the owner's claim-value -> role mapping, short-lived login states (PKCE, state, nonce),
-- just-in-time accounts bound to (tenant, issuer, subject), and the tenant's sign-in settings.

-- An account is local (a password hash, found by email) or single sign-on (issuer and subject, no
-- password). An SSO account's email is only what the IdP last said; it never finds the account,
-- so it may repeat a local account's email without either reaching the other.
ALTER TABLE admin_users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE admin_users ADD COLUMN oidc_issuer text;
ALTER TABLE admin_users ADD COLUMN oidc_subject text;
ALTER TABLE admin_users ADD CONSTRAINT admin_users_local_or_sso CHECK (
  (oidc_issuer IS NULL) = (oidc_subject IS NULL) AND (oidc_subject IS NOT NULL OR password_hash IS NOT NULL)
);
DROP INDEX IF EXISTS admin_users_tenant_email;
CREATE UNIQUE INDEX admin_users_tenant_email ON admin_users (tenant_id, lower(email)) WHERE oidc_subject IS NULL;
CREATE UNIQUE INDEX admin_users_tenant_oidc ON admin_users (tenant_id, oidc_issuer, oidc_subject) WHERE oidc_subject IS NOT NULL;

CREATE TABLE oidc_providers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  -- Shown on the login page.
  name text NOT NULL,
  issuer text NOT NULL,
  client_id text NOT NULL,
  -- AES-256-GCM under the control plane's sealing key, with `oidc-provider:<id>` as associated data.
  client_secret_sealed text NOT NULL,
  -- The ID token claim whose values the mapping turns into a role (`groups`, `roles`, ...).
  role_claim text NOT NULL DEFAULT 'groups',
  enabled boolean NOT NULL DEFAULT true,
  -- The last sign-in through this provider that opened a session: local passwords can be turned
  -- off only once an owner has signed in through an enabled provider.
  last_owner_sign_in_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  UNIQUE (id, tenant_id),
  UNIQUE (tenant_id, name),
  UNIQUE (tenant_id, issuer)
);

CREATE TABLE oidc_role_mappings (
  tenant_id uuid NOT NULL,
  provider_id uuid NOT NULL,
  claim_value text NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'auditor')),
  PRIMARY KEY (provider_id, claim_value),
  FOREIGN KEY (provider_id, tenant_id) REFERENCES oidc_providers (id, tenant_id) ON DELETE CASCADE
);

-- One row per login begun; taken (deleted) by the callback, so a state answers once. Only hashes of
-- the state and of the browser-binding cookie are kept; the PKCE verifier and nonce must be kept
-- as they are, for at most the row's few minutes.
CREATE TABLE oidc_login_states (
  state_sha256 text PRIMARY KEY,
  tenant_id uuid NOT NULL,
  provider_id uuid NOT NULL,
  browser_sha256 text NOT NULL,
  nonce text NOT NULL,
  code_verifier text NOT NULL,
  redirect_uri text NOT NULL,
  expires_at timestamptz NOT NULL,
  FOREIGN KEY (provider_id, tenant_id) REFERENCES oidc_providers (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX oidc_login_states_expiry ON oidc_login_states (expires_at);

-- How a tenant's people sign in. No row: local passwords on, no second factor required.
CREATE TABLE tenant_identity_settings (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  local_passwords boolean NOT NULL DEFAULT true,
  -- With local passwords off, the one local owner who may still sign in with a password.
  break_glass_user_id uuid REFERENCES admin_users(id),
  CHECK (local_passwords OR break_glass_user_id IS NOT NULL),
  updated_at timestamptz NOT NULL
);

ALTER TABLE oidc_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY oidc_providers_tenant ON oidc_providers USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY oidc_providers_system ON oidc_providers USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE oidc_role_mappings ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_role_mappings FORCE ROW LEVEL SECURITY;
CREATE POLICY oidc_role_mappings_tenant ON oidc_role_mappings USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY oidc_role_mappings_system ON oidc_role_mappings USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE oidc_login_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_login_states FORCE ROW LEVEL SECURITY;
CREATE POLICY oidc_login_states_tenant ON oidc_login_states USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY oidc_login_states_system ON oidc_login_states USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE tenant_identity_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_identity_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_identity_settings_tenant ON tenant_identity_settings USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY tenant_identity_settings_system ON tenant_identity_settings USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
