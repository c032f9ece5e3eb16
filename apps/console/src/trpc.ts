/**
 * The tRPC client: same origin, batched, with the session cookie and the CSRF header the control
 * plane requires on every call made with that cookie.
 */
import { QueryCache, QueryClient } from '@tanstack/react-query';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { forPerson, remoteErrorClass } from '@airlock/errors';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import type { AppRouter } from '@airlock/api/router';

export const CSRF_HEADER = 'x-airlock-csrf';

let csrfToken: string | null = null;

/** Set from `session.login` and `session.me`; sent on every request so mutations pass the CSRF check. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export const trpcClient = createTRPCClient<AppRouter>({
  links: [
    httpBatchLink({
      url: '/trpc',
      headers: () => (csrfToken ? { [CSRF_HEADER]: csrfToken } : {}),
      fetch: (url, options) => fetch(url, { ...options, credentials: 'same-origin' }),
    }),
  ],
});

export const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();

export function isUnauthorized(error: unknown): boolean {
  return remoteErrorClass(error) === 'authentication';
}

export function isForbidden(error: unknown): boolean {
  const errorClass = remoteErrorClass(error);
  return errorClass === 'not-allowed' || errorClass === 'policy-violation';
}

/** A message fit to show: the server's own words, without a class name (the CLIs word theirs the same way). */
export function errorMessage(error: unknown): string {
  if (!(error instanceof Error)) return 'something went wrong';
  return forPerson(error).message;
}

export function createQueryClient(): QueryClient {
  return new QueryClient({
    // A query refused as unauthenticated means the session ended (idle, signed out elsewhere,
    // user disabled): start over, where session.me answers null and the sign-in page shows.
    // Mutations are left alone, so a failed sign-in keeps its message.
    queryCache: new QueryCache({
      onError: (error) => {
        if (isUnauthorized(error)) window.location.assign('/');
      },
    }),
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        // Refusals are answers, not glitches: retrying a 401 or 403 only delays the message.
        retry: (count, error) => count < 2 && !isUnauthorized(error) && !isForbidden(error),
        refetchOnWindowFocus: true,
      },
    },
  });
}
