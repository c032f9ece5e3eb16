/**
 * The admin session: who is signed in, their role and permissions, and the CSRF token. The
 * permissions come from the server and only decide which controls are shown; every procedure
 * checks them again.
 */
import { createContext, type ReactNode, useContext, useEffect } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ErrorState, Loading } from './components/ui.tsx';
import type { Permission } from '@airlock/api/router';
import { setCsrfToken, useTRPC } from './trpc.ts';

export type { Permission } from '@airlock/api/router';

export interface SessionUser {
  id: string;
  email: string;
  role: string;
  tenantId: string;
}

interface Session {
  user: SessionUser;
  expiresAt: string;
  can(permission: Permission): boolean;
  logout(): void;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}

/** Shows a control only to callers whose role allows it. */
export function Can({ permission, children }: { permission: Permission; children: ReactNode }) {
  return useSession().can(permission) ? <>{children}</> : null;
}

export function useMe() {
  const trpc = useTRPC();
  const me = useQuery({ ...trpc.session.me.queryOptions(), staleTime: 60_000 });
  useEffect(() => {
    if (me.data !== undefined) setCsrfToken(me.data?.csrfToken ?? null);
  }, [me.data]);
  return me;
}

export function SessionProvider({ user, expiresAt, children }: { user: SessionUser; expiresAt: string; children: ReactNode }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const granted = useQuery({ ...trpc.console.permissions.queryOptions(), staleTime: 60_000 });
  const logout = useMutation(
    trpc.session.logout.mutationOptions({
      onSettled: () => {
        setCsrfToken(null);
        queryClient.clear();
        window.location.assign('/');
      },
    }),
  );
  if (granted.isPending) return <Loading label="Loading your permissions" />;
  if (granted.isError) return <ErrorState error={granted.error} retry={() => void granted.refetch()} />;
  const held = new Set<string>(granted.data.permissions);
  const value: Session = {
    user,
    expiresAt,
    can: (permission) => held.has(permission),
    logout: () => logout.mutate(),
  };
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}
