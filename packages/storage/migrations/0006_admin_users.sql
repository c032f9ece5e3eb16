-- Admin identities for the console: local accounts with scrypt password hashes, cookie sessions
-- stored as SHA-256 of their token, login throttling, and optional per-key permission lists.

-- `email` is stored trimmed and lower-cased; the index makes it unique across all tenants, so a
-- login needs no tenant name.
CREATE TABLE admin_users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  email text NOT NULL CHECK (email = lower(email)),
  -- Self-describing: scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>.
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'operator', 'auditor')),
  disabled boolean NOT NULL DEFAULT false,
  failed_attempts integer NOT NULL DEFAULT 0,
  locked_until timestamptz,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_users_email ON admin_users (lower(email));
CREATE INDEX admin_users_tenant ON admin_users (tenant_id);

-- A session lives until the earlier of its idle and its absolute expiry. Only the token's SHA-256
-- is kept, so a read of this table does not yield usable cookies.
CREATE TABLE admin_sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  token_sha256 text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  idle_expires_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  source_ip text
);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- Failed-login counters that are not an account's own: per source address, and per email that
-- names no account (so an unknown email locks exactly like a known one and reveals nothing).
CREATE TABLE login_throttle (
  key text PRIMARY KEY,
  failures integer NOT NULL,
  last_failure_at timestamptz NOT NULL,
  locked_until timestamptz
);

-- NULL: the key may use every permission of its role; otherwise only those listed (and held by the role).
ALTER TABLE api_keys ADD COLUMN permissions text[];
