/**
 * The first admin credential. Run on the server (`airlock bootstrap`), it creates the tenant and an
 * owner API key, printed once. It refuses when the tenant already has a live owner key, so it
 * cannot be used to mint keys quietly; further keys are made with an existing one.
 */
import { ConflictError } from '@airlock/errors';
import { appendAudit, type Database } from '@airlock/storage';
import { createApiKey } from '@airlock/auth';

export async function bootstrapTenant(
  db: Database,
  input: { tenant: string; keyName: string; expiresInDays: number },
  now: Date = new Date(),
): Promise<{ tenantId: string; key: string; expiresAt: string }> {
  // System scope: it creates the tenant, so there is no tenant to be confined to yet.
  return db.forSystem().transaction(async (tx) => {
    await tx.query('INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [input.tenant]);
    const [tenant] = await tx.query<{ id: string }>('SELECT id FROM tenants WHERE name = $1 FOR UPDATE', [input.tenant]);
    if (!tenant) throw new Error('tenant insert returned nothing');
    const live = await tx.query(
      `SELECT 1 FROM api_keys WHERE tenant_id = $1 AND role = 'owner' AND revoked_at IS NULL AND expires_at > $2`,
      [tenant.id, now],
    );
    if (live.length > 0) throw new ConflictError(`tenant ${input.tenant} already has an owner key; create further keys with it`);
    const key = await createApiKey(tx, { tenantId: tenant.id, name: input.keyName, role: 'owner', expiresInDays: input.expiresInDays }, now);
    await appendAudit(
      tx,
      {
        tenantId: tenant.id,
        actor: { type: 'system', id: 'bootstrap' },
        action: 'api-key-create',
        target: key.id,
        outcome: 'success',
        sourceIp: null,
        meta: { role: 'owner', prefix: key.prefix, expiresAt: key.expiresAt.toISOString() },
      },
      now,
    );
    return { tenantId: tenant.id, key: key.key, expiresAt: key.expiresAt.toISOString() };
  });
}
