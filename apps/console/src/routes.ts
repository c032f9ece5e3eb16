/**
 * The console's pages, by path: the one list the shell renders from and the build publishes as
 * `routes.json`, from which the control plane learns which paths are the console's (answered with
 * index.html) and which are not (404). To add a page, add its path here and its entry in App.tsx;
 * the type makes the two agree.
 */
export const CONSOLE_PATHS = [
  '/',
  '/agents',
  '/updates',
  '/agent-groups',
  '/integrations',
  '/runs',
  '/scopes',
  '/audit',
  '/alert-destinations',
  '/users',
  '/requests',
  '/api-keys',
  '/enrollment-tokens',
  '/oauth-clients',
  '/account',
] as const;

export type ConsolePath = (typeof CONSOLE_PATHS)[number];
