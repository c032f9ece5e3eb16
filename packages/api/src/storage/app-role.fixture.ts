/**
 * Test fixture: a login role that is a member of `airlock_app`, as the README tells operators to
 * create, connected to a test database. Row-level security applies to it as in production.
 */
import pg from 'pg';
import { randomToken } from '@airlock/auth';
import { connectPostgres, type Database } from '@airlock/storage';

export interface AppRoleConnection extends AsyncDisposable {
  db: Database;
}

/** `owner` must have migrated the database at `url` already (migration 0005 creates airlock_app). */
export async function connectAsAppRole(owner: Database, url: string): Promise<AppRoleConnection> {
  const login = `airlock_test_${randomToken(6).toLowerCase().replace(/[^a-z0-9]/g, '0')}`;
  // DDL takes no bind parameters: the generated role name is quoted as an identifier.
  const role = pg.escapeIdentifier(login);
  await owner.query(`CREATE ROLE ${role} LOGIN IN ROLE airlock_app`);
  const appUrl = new URL(url);
  appUrl.username = login;
  const db = connectPostgres(appUrl.toString());
  return {
    db,
    async [Symbol.asyncDispose]() {
      await db.close();
      await owner.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await owner.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    },
  };
}
