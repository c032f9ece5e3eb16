-- Second factors and password changes for local accounts: TOTP (RFC 6238) with its secret sealed
-- like webhook secrets, single-use recovery codes kept as hashes, WebAuthn passkeys, password
-- logins waiting for their next step, a forced change after an owner's reset, and the tenant
-- setting that requires a second factor of owners and admins.

ALTER TABLE admin_users ADD COLUMN totp_secret_sealed text;
-- An enrollment begun but not yet confirmed with a code; replaces nothing until confirmed.
ALTER TABLE admin_users ADD COLUMN totp_pending_sealed text;
-- The last RFC 6238 time step accepted: a code answers once, and never an older one after it.
ALTER TABLE admin_users ADD COLUMN totp_last_step bigint;
ALTER TABLE admin_users ADD COLUMN must_change_password boolean NOT NULL DEFAULT false;
ALTER TABLE admin_users ADD COLUMN password_changed_at timestamptz;

-- High-entropy random codes, so SHA-256 is enough; each one answers once.
CREATE TABLE recovery_codes (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  user_id uuid NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
  code_sha256 text NOT NULL,
  used_at timestamptz,
  PRIMARY KEY (user_id, code_sha256)
);

-- A password login that passed its password and waits for its next step (a second factor, a new
-- password, or enrolling a second factor the tenant requires). Only the token's hash is kept.
CREATE TABLE pending_logins (
  token_sha256 text PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  user_id uuid NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
  stage text NOT NULL CHECK (stage IN ('second-factor', 'change-password', 'enroll-second-factor')),
  attempts integer NOT NULL DEFAULT 0,
  source_ip text,
  expires_at timestamptz NOT NULL
);
CREATE INDEX pending_logins_user ON pending_logins (user_id);
CREATE INDEX pending_logins_expiry ON pending_logins (expires_at);

-- WebAuthn passkeys, a second factor beside TOTP: the public key and signature counter of each
-- credential, and the challenge of a registration or of a pending login's assertion (single use).
CREATE TABLE webauthn_credentials (
  id text PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  user_id uuid NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
  public_key text NOT NULL,
  counter bigint NOT NULL,
  transports text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  last_used_at timestamptz
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);
ALTER TABLE admin_users ADD COLUMN webauthn_challenge text;
ALTER TABLE pending_logins ADD COLUMN webauthn_challenge text;

ALTER TABLE tenant_identity_settings ADD COLUMN require_second_factor boolean NOT NULL DEFAULT false;

ALTER TABLE recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY recovery_codes_tenant ON recovery_codes USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY recovery_codes_system ON recovery_codes USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE pending_logins ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_logins FORCE ROW LEVEL SECURITY;
CREATE POLICY pending_logins_tenant ON pending_logins USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY pending_logins_system ON pending_logins USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
ALTER TABLE webauthn_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE webauthn_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY webauthn_credentials_tenant ON webauthn_credentials USING (tenant_id = airlock_current_tenant()) WITH CHECK (tenant_id = airlock_current_tenant());
CREATE POLICY webauthn_credentials_system ON webauthn_credentials USING (airlock_system_scope()) WITH CHECK (airlock_system_scope());
