/**
 * How a tenant's people sign in: whether local passwords still work (and, when not, the one
 * break-glass owner who keeps one). A tenant without a row has the defaults.
 */
import type { Queryable } from '../storage/database.ts';

export interface IdentitySettings {
  localPasswords: boolean;
  breakGlassUserId: string | null;
}

export async function identitySettingsOf(db: Queryable, tenantId: string): Promise<IdentitySettings> {
  const [row] = await db.query<{ local_passwords: boolean; break_glass_user_id: string | null }>(
    'SELECT local_passwords, break_glass_user_id FROM tenant_identity_settings WHERE tenant_id = $1',
    [tenantId],
  );
  return { localPasswords: row?.local_passwords ?? true, breakGlassUserId: row?.break_glass_user_id ?? null };
}

/** The settings of the tenant named `tenant`; the defaults when there is no such tenant. */
export async function identitySettingsByName(db: Queryable, tenant: string): Promise<IdentitySettings> {
  const [row] = await db.query<{ local_passwords: boolean; break_glass_user_id: string | null }>(
    'SELECT s.local_passwords, s.break_glass_user_id FROM tenant_identity_settings s JOIN tenants t ON t.id = s.tenant_id WHERE t.name = $1',
    [tenant],
  );
  return { localPasswords: row?.local_passwords ?? true, breakGlassUserId: row?.break_glass_user_id ?? null };
}
