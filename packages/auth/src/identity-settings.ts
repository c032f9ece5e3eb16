/**
 * How a tenant's people sign in: whether local passwords still work (and, when not, the one
 * break-glass owner who keeps one). A tenant without a row has the defaults.
 */
import type { Queryable } from '@airlock/storage';

export interface IdentitySettings {
  localPasswords: boolean;
  breakGlassUserId: string | null;
  /** Owners and admins with a local password must use a second factor. */
  requireSecondFactor: boolean;
}

interface SettingsRow {
  local_passwords: boolean;
  break_glass_user_id: string | null;
  require_second_factor: boolean;
}

function settingsOf(row: SettingsRow | undefined): IdentitySettings {
  return { localPasswords: row?.local_passwords ?? true, breakGlassUserId: row?.break_glass_user_id ?? null, requireSecondFactor: row?.require_second_factor ?? false };
}

export async function identitySettingsOf(db: Queryable, tenantId: string): Promise<IdentitySettings> {
  const [row] = await db.query<SettingsRow>(
    'SELECT local_passwords, break_glass_user_id, require_second_factor FROM tenant_identity_settings WHERE tenant_id = $1',
    [tenantId],
  );
  return settingsOf(row);
}

/** The settings of the tenant named `tenant`; the defaults when there is no such tenant. */
export async function identitySettingsByName(db: Queryable, tenant: string): Promise<IdentitySettings> {
  const [row] = await db.query<SettingsRow>(
    'SELECT s.local_passwords, s.break_glass_user_id, s.require_second_factor FROM tenant_identity_settings s JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1',
    [tenant],
  );
  return settingsOf(row);
}
