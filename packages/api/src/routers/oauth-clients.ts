/**
 * OAuth 2.0 clients of API consumers: list, create, rotate, disable, enable and delete. Managed
 * under the same permissions as API keys (`keys:read`, `keys:write`), with the same ceiling: nobody
 * makes or manages a client holding more than they hold themselves. A secret is shown once, stored
 * hashed. Disabling, rotating or deleting a client ends its access tokens on their next use.
 */
import type { TRPCRouterRecord } from '@trpc/server';
import { NotFoundError, UserError } from '@airlock/errors';
import { z } from 'zod';
import { byId, displayText } from '@airlock/protocol';
import { appendAudit, eventBy, type Queryable } from '@airlock/storage';
import { assertCanGrant } from '../auth/admin-auth.ts';
import {
  type AdminPrincipal,
  authMethods,
  clientJwks,
  createClient,
  newSecret,
  type Permission,
  permissions,
  principalRef,
  type Role,
  roleAllows,
  roles,
  sha256Hex,
} from '@airlock/auth';
import { procedureFor } from '../trpc.ts';
import type { Context } from '../context.ts';

const createInput = z
  .strictObject({
    name: displayText({ min: 1, max: 100 }),
    role: z.enum(roles),
    authMethod: z.enum(authMethods),
    /** Only these of the role's permissions; unset: all of them. */
    permissions: z.array(z.enum(permissions)).min(1).max(permissions.length).optional(),
    /** Only the `:read` permissions. */
    readOnly: z.boolean().default(false),
    /** Only these integrations (by name); unset: all of the tenant's. */
    integrations: z.array(displayText({ min: 1, max: 200 })).min(1).max(50).optional(),
    /** The public keys that sign this client's assertions (private_key_jwt only). */
    jwks: clientJwks.optional(),
  })
  .refine((input) => (input.authMethod === 'private_key_jwt') === (input.jwks !== undefined), { message: 'a private_key_jwt client needs jwks, a secret client none' });

/** What a client may use: its role's permissions, narrowed as it says. */
function heldBy(role: Role, narrowed: readonly Permission[] | null, readOnly: boolean): Permission[] {
  return permissions.filter((p) => roleAllows(role, p) && (narrowed === null || narrowed.includes(p)) && (!readOnly || p.endsWith(':read')));
}

interface StoredClient {
  id: string;
  client_id: string;
  name: string;
  auth_method: string;
  role: Role;
  permissions: Permission[] | null;
  read_only: boolean;
  integrations: string[] | null;
}

/** The client `id` of the caller's tenant, locked; refused like creating it when it holds more than the caller. */
async function manageable(ctx: Pick<Context, 'db' | 'request'>, tx: Queryable, admin: AdminPrincipal, id: string, action: string): Promise<StoredClient> {
  const [client] = await tx.query<StoredClient>(
    'SELECT id, client_id, name, auth_method, role, permissions, read_only, integrations FROM oauth_clients WHERE id = $1 AND tenant_id = $2 FOR UPDATE',
    [id, admin.tenantId],
  );
  if (!client) throw new NotFoundError('no OAuth client with that id');
  await assertCanGrant(
    ctx,
    admin,
    action,
    { role: client.role, permissions: heldBy(client.role, client.permissions, client.read_only) },
    `a ${admin.role} cannot manage a ${client.role} client`,
  );
  return client;
}

export const oauthClientsRouter = {
  list: procedureFor('keys:read').query(async ({ ctx }) => {
    const rows = await ctx.db.query<
      StoredClient & { created_at: Date; created_by: string | null; rotated_at: Date | null; disabled_at: Date | null; last_used_at: Date | null; jwks: unknown; integration_names: string[] | null }
    >(
      `SELECT c.id, c.client_id, c.name, c.auth_method, c.role, c.permissions, c.read_only, c.integrations, c.created_at, c.created_by, c.rotated_at,
         c.disabled_at, c.last_used_at, c.jwks,
         (SELECT array_agg(i.name ORDER BY i.name) FROM integrations i WHERE i.id = ANY(c.integrations) AND i.tenant_id = c.tenant_id) AS integration_names
       FROM oauth_clients c WHERE c.tenant_id = $1 ORDER BY c.created_at`,
      [ctx.admin.tenantId],
    );
    return rows.map((row) => {
      const jwks = clientJwks.safeParse(row.jwks);
      return {
        id: row.id,
        clientId: row.client_id,
        name: row.name,
        authMethod: row.auth_method,
        role: row.role,
        permissions: row.permissions,
        readOnly: row.read_only,
        integrations: row.integrations === null ? null : { ids: row.integrations, names: row.integration_names ?? [] },
        keyIds: jwks.success ? jwks.data.keys.map((key) => key.kid ?? null) : null,
        createdAt: row.created_at.toISOString(),
        createdBy: row.created_by,
        rotatedAt: row.rotated_at?.toISOString() ?? null,
        disabledAt: row.disabled_at?.toISOString() ?? null,
        lastUsedAt: row.last_used_at?.toISOString() ?? null,
      };
    });
  }),

  /** Returns the client secret (client_secret_basic) once; it is never shown again. */
  create: procedureFor('keys:write')
    .input(createInput)
    .mutation(async ({ ctx, input }) => {
      const narrowed = input.permissions ?? null;
      const outside = narrowed?.filter((permission) => !roleAllows(input.role, permission)) ?? [];
      if (outside.length > 0) throw new UserError(`role ${input.role} does not hold ${outside.join(', ')}`);
      const held = heldBy(input.role, narrowed, input.readOnly);
      if (held.length === 0) throw new UserError('this client would hold no permission');
      await assertCanGrant(ctx, ctx.admin, 'oauthClients.create', { role: input.role, permissions: held }, `a ${ctx.admin.role} cannot create a client with those permissions`);
      return ctx.db.transaction(async (tx) => {
        let integrations: string[] | null = null;
        if (input.integrations) {
          const names = [...new Set(input.integrations)];
          const found = await tx.query<{ id: string; name: string }>('SELECT id, name FROM integrations WHERE tenant_id = $1 AND name = ANY($2)', [ctx.admin.tenantId, names]);
          const missing = names.filter((name) => !found.some((row) => row.name === name));
          if (missing.length > 0) throw new UserError(`no integration named ${missing.map((name) => JSON.stringify(name)).join(', ')}`);
          integrations = found.map((row) => row.id);
        }
        const created = await createClient(
          tx,
          {
            tenantId: ctx.admin.tenantId,
            name: input.name,
            role: input.role,
            permissions: narrowed,
            readOnly: input.readOnly,
            integrations,
            authMethod: input.authMethod,
            jwks: input.jwks ?? null,
          },
          ctx.now(),
          principalRef(ctx.admin),
        );
        await appendAudit(
          tx,
          eventBy(ctx.admin, ctx.request, {
            action: 'oauth-client-create',
            target: created.id,
            outcome: 'success',
            meta: { clientId: created.clientId, name: input.name, role: input.role, authMethod: input.authMethod, permissions: narrowed, readOnly: input.readOnly, integrations },
          }),
        );
        return { id: created.id, clientId: created.clientId, clientSecret: created.clientSecret };
      });
    }),

  /**
   * A new secret (client_secret_basic) or a new JWKS (private_key_jwt). The old credential stops at
   * once and so do the tokens issued with it: a rotation usually means the old one may be known.
   */
  rotate: procedureFor('keys:write')
    .input(byId.extend({ jwks: clientJwks.optional() }))
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const client = await manageable(ctx, tx, ctx.admin, input.id, 'oauthClients.rotate');
        const secret = client.auth_method === 'client_secret_basic' ? newSecret() : null;
        if ((secret === null) !== (input.jwks !== undefined)) throw new UserError(secret === null ? 'a private_key_jwt client is rotated with a new jwks' : 'a secret client takes no jwks');
        await tx.query(
          `UPDATE oauth_clients SET secret_sha256 = $2, jwks = $3, token_generation = token_generation + 1, rotated_at = $4 WHERE id = $1`,
          [client.id, secret === null ? null : sha256Hex(secret), input.jwks === undefined ? null : JSON.stringify(input.jwks), ctx.now()],
        );
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'oauth-client-rotate', target: client.id, outcome: 'success', meta: { clientId: client.client_id, authMethod: client.auth_method } }));
        return { id: client.id, clientId: client.client_id, clientSecret: secret };
      });
    }),

  /** Refuses new tokens and ends the client's live ones on their next use. */
  disable: procedureFor('keys:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const client = await manageable(ctx, tx, ctx.admin, input.id, 'oauthClients.disable');
        await tx.query('UPDATE oauth_clients SET disabled_at = coalesce(disabled_at, $2) WHERE id = $1', [client.id, ctx.now()]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'oauth-client-disable', target: client.id, outcome: 'success', meta: { clientId: client.client_id } }));
        return { id: client.id };
      });
    }),

  enable: procedureFor('keys:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const client = await manageable(ctx, tx, ctx.admin, input.id, 'oauthClients.enable');
        await tx.query('UPDATE oauth_clients SET disabled_at = NULL WHERE id = $1', [client.id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'oauth-client-enable', target: client.id, outcome: 'success', meta: { clientId: client.client_id } }));
        return { id: client.id };
      });
    }),

  delete: procedureFor('keys:write')
    .input(byId)
    .mutation(async ({ ctx, input }) => {
      return ctx.db.transaction(async (tx) => {
        const client = await manageable(ctx, tx, ctx.admin, input.id, 'oauthClients.delete');
        await tx.query('DELETE FROM oauth_clients WHERE id = $1', [client.id]);
        await appendAudit(tx, eventBy(ctx.admin, ctx.request, { action: 'oauth-client-delete', target: client.id, outcome: 'success', meta: { clientId: client.client_id, name: client.name } }));
        return { id: client.id };
      });
    }),
} satisfies TRPCRouterRecord;
