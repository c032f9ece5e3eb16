/** The control plane's whole API. Add a router file under `routers/` and list it here. */
import { accountRouter } from './routers/account.ts';
import { agentChannelRouter } from './routers/agent-channel.ts';
import { agentsRouter, auditRouter, integrationsRouter, runsRouter } from './routers/admin.ts';
import { alertDestinationsRouter, alertsRouter } from './routers/alerts.ts';
import { apiKeysRouter } from './routers/api-keys.ts';
import { consoleRouter } from './routers/console.ts';
import { controlPlaneRouter } from './routers/control-plane.ts';
import { custodyRouter } from './routers/custody.ts';
import { enrollmentRouter } from './routers/enrollment.ts';
import { oauthClientsRouter } from './routers/oauth-clients.ts';
import { scopeRouters } from './routers/grants.ts';
import { requestsRouter } from './routers/requests.ts';
import { sessionRouter } from './routers/session.ts';
import { ssoRouter } from './routers/sso.ts';
import { releasesRouter, rolloutsRouter } from './routers/updates.ts';
import { usersRouter } from './routers/users.ts';
import { router } from './trpc.ts';

export const appRouter = router({
  enrollment: enrollmentRouter,
  agent: agentChannelRouter,
  agents: agentsRouter,
  integrations: integrationsRouter,
  runs: runsRouter,
  audit: auditRouter,
  apiKeys: apiKeysRouter,
  oauthClients: oauthClientsRouter,
  requests: requestsRouter,
  controlPlane: controlPlaneRouter,
  custody: custodyRouter,
  console: consoleRouter,
  ...scopeRouters,
  session: sessionRouter,
  sso: ssoRouter,
  account: accountRouter,
  users: usersRouter,
  alerts: alertsRouter,
  alertDestinations: alertDestinationsRouter,
  releases: releasesRouter,
  rollouts: rolloutsRouter,
});

export type AppRouter = typeof appRouter;
