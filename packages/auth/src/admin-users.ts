/**
 * Local admin accounts: one email (unique within its tenant, compared lower-cased), a scrypt password
 * hash, a role, and the lockout state that login maintains. Every change is audited with its
 * before and after in the same transaction.
 */
import type { AuditEventInput } from '@airlock/audit';
import { ConflictError, NotFoundError, UserError } from '@airlock/errors';
import { appendAudit, type Database, type Queryable } from '@airlock/storage';
import { checkPasswordPolicy, hashPassword } from './passwords.ts';
import type { Role } from './permissions.ts';
import { defaultAuthSettings, type AuthSettings } from './settings.ts';

const EMAIL = /^[^\s@]+@[^\s@]+$/;
export const MAX_EMAIL_LENGTH = 254;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export interface AdminUser {
  id: string;
  tenantId: string;
  email: string;
  role: Role;
  disabled: boolean;
  failedAttempts: number;
  lockedUntil: string | null;
  lastLoginAt: string | null;
  createdAt: string;
}

export interface UserRow {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  disabled: boolean;
  failed_attempts: number;
  locked_until: Date | null;
  last_login_at: Date | null;
  created_at: Date;
}

export const USER_COLUMNS = 'id, tenant_id, email, role, disabled, failed_attempts, locked_until, last_login_at, created_at';

export function userFromRow(row: UserRow): AdminUser {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    email: row.email,
    role: row.role,
    disabled: row.disabled,
    failedAttempts: row.failed_attempts,
    lockedUntil: row.locked_until?.toISOString() ?? null,
    lastLoginAt: row.last_login_at?.toISOString() ?? null,
    createdAt: row.created_at.toISOString(),
  };
}

/** Who made a change, as the audit trail records it. */
export type AuditAuthor = Pick<AuditEventInput, 'actor' | 'sourceIp'> & { meta?: AuditEventInput['meta'] };

export async function createAdminUser(
  tx: Queryable,
  input: { tenantId: string; email: string; role: Role; password: string },
  author: AuditAuthor,
  scrypt: AuthSettings['scrypt'] = defaultAuthSettings.scrypt,
  now: Date = new Date(),
): Promise<AdminUser> {
  const email = normalizeEmail(input.email);
  if (email.length > MAX_EMAIL_LENGTH || !EMAIL.test(email)) throw new UserError('expected an email address');
  checkPasswordPolicy(input.password);
  const passwordHash = await hashPassword(input.password, scrypt);
  const [row] = await tx.query<UserRow>(
    `INSERT INTO admin_users (tenant_id, email, password_hash, role, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING RETURNING ${USER_COLUMNS}`,
    [input.tenantId, email, passwordHash, input.role, now],
  );
  if (!row) throw new ConflictError('an admin user with that email already exists');
  const user = userFromRow(row);
  await appendAudit(
    tx,
    {
      tenantId: user.tenantId,
      actor: author.actor,
      action: 'admin-user-create',
      target: user.id,
      outcome: 'success',
      sourceIp: author.sourceIp,
      meta: { ...author.meta, email, before: null, after: { email, role: user.role, disabled: false } },
    },
    now,
  );
  return user;
}

/** For the server CLI and the demo: an admin user in the tenant named `tenant`, audited as the system. */
export async function createAdminUserInTenant(
  db: Database,
  input: { tenant: string; email: string; role: Role; password: string },
  options: { scrypt?: AuthSettings['scrypt']; now?: Date } = {},
): Promise<AdminUser> {
  return db.transaction(async (tx) => {
    const tenantId = await tenantIdOf(tx, input.tenant);
    return createAdminUser(tx, { ...input, tenantId }, { actor: { type: 'system', id: 'cli' }, sourceIp: null }, options.scrypt, options.now);
  });
}

export async function tenantIdOf(db: Queryable, tenant: string): Promise<string> {
  const [row] = await db.query<{ id: string }>('SELECT id FROM tenants WHERE name = $1', [tenant]);
  if (!row) throw new NotFoundError(`no tenant named ${tenant}`);
  return row.id;
}

export async function listAdminUsers(db: Queryable, tenantId: string): Promise<AdminUser[]> {
  const rows = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM admin_users WHERE tenant_id = $1 ORDER BY email`, [tenantId]);
  return rows.map(userFromRow);
}

/** The user of this tenant with this id or email, locked for update. */
export async function lockAdminUser(tx: Queryable, tenantId: string, user: { id: string } | { email: string }): Promise<AdminUser> {
  const [row] =
    'id' in user
      ? await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM admin_users WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, user.id])
      : await tx.query<UserRow>(`SELECT ${USER_COLUMNS} FROM admin_users WHERE tenant_id = $1 AND email = $2 FOR UPDATE`, [
          tenantId,
          normalizeEmail(user.email),
        ]);
  if (!row) throw new NotFoundError('no admin user with that id in this tenant');
  return userFromRow(row);
}

/** Clears a lockout: the failure count restarts and the next login is let through. */
export async function unlockAdminUser(tx: Queryable, tenantId: string, user: { id: string } | { email: string }, author: AuditAuthor, now: Date): Promise<AdminUser> {
  const before = await lockAdminUser(tx, tenantId, user);
  const [row] = await tx.query<UserRow>(
    `UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, updated_at = $2 WHERE id = $1 RETURNING ${USER_COLUMNS}`,
    [before.id, now],
  );
  if (!row) throw new NotFoundError('no admin user with that id in this tenant');
  const after = userFromRow(row);
  await appendAudit(
    tx,
    {
      tenantId,
      actor: author.actor,
      action: 'admin-user-unlock',
      target: after.id,
      outcome: 'success',
      sourceIp: author.sourceIp,
      meta: {
        ...author.meta,
        email: after.email,
        before: { failedAttempts: before.failedAttempts, lockedUntil: before.lockedUntil },
        after: { failedAttempts: 0, lockedUntil: null },
      },
    },
    now,
  );
  return after;
}
