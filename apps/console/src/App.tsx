/** The shell: sign-in gate, navigation by role, and the page for the current path. */
import { type ReactNode, useEffect, useRef } from 'react';
import { ErrorState, Loading } from './components/ui.tsx';
import { ApiKeysPage } from './pages/ApiKeys.tsx';
import { AgentsPage } from './pages/Agents.tsx';
import { AgentGroupsPage } from './pages/AgentGroups.tsx';
import { UpdatesPage } from './pages/Updates.tsx';
import { AuditPage } from './pages/Audit.tsx';
import { AlertDestinationsPage } from './pages/AlertDestinations.tsx';
import { EnrollmentTokensPage } from './pages/EnrollmentTokens.tsx';
import { IntegrationsPage } from './pages/Integrations.tsx';
import { LoginPage } from './pages/Login.tsx';
import { OAuthClientsPage } from './pages/OAuthClients.tsx';
import { OverviewPage } from './pages/Overview.tsx';
import { RequestsPage } from './pages/Requests.tsx';
import { RunsPage } from './pages/Runs.tsx';
import { ScopesPage } from './pages/Scopes.tsx';
import { UsersPage } from './pages/Users.tsx';
import { AccountPage } from './pages/Account.tsx';
import { Link, useLocation } from './router.tsx';
import { CONSOLE_PATHS, type ConsolePath } from './routes.ts';
import { type Permission, SessionProvider, useMe, useSession } from './session.tsx';

interface Page {
  path: ConsolePath;
  label: string;
  permission: Permission;
  render: () => ReactNode;
}

/** Every path of CONSOLE_PATHS has its page, and no page has a path outside it. */
const byPath: Record<ConsolePath, Omit<Page, 'path'>> = {
  '/': { label: 'Overview', permission: 'runs:read', render: () => <OverviewPage /> },
  '/agents': { label: 'Agents', permission: 'agents:read', render: () => <AgentsPage /> },
  '/updates': { label: 'Updates', permission: 'agents:read', render: () => <UpdatesPage /> },
  '/agent-groups': { label: 'Agent groups', permission: 'scopes:read', render: () => <AgentGroupsPage /> },
  '/integrations': { label: 'Integrations', permission: 'integrations:read', render: () => <IntegrationsPage /> },
  '/runs': { label: 'Runs', permission: 'runs:read', render: () => <RunsPage /> },
  '/scopes': { label: 'Scopes', permission: 'scopes:read', render: () => <ScopesPage /> },
  '/audit': { label: 'Audit', permission: 'audit:read', render: () => <AuditPage /> },
  '/alert-destinations': { label: 'Alert destinations', permission: 'alerts:read', render: () => <AlertDestinationsPage /> },
  '/users': { label: 'Users', permission: 'users:read', render: () => <UsersPage /> },
  '/requests': { label: 'API requests', permission: 'requests:read', render: () => <RequestsPage /> },
  '/api-keys': { label: 'API keys', permission: 'keys:read', render: () => <ApiKeysPage /> },
  '/enrollment-tokens': { label: 'Enrollment tokens', permission: 'agents:enroll', render: () => <EnrollmentTokensPage /> },
  '/oauth-clients': { label: 'OAuth clients', permission: 'keys:read', render: () => <OAuthClientsPage /> },
  '/account': { label: 'Account', permission: 'account:manage', render: () => <AccountPage /> },
};

const pages: Page[] = CONSOLE_PATHS.map((path) => ({ path, ...byPath[path] }));

export function App() {
  const me = useMe();
  if (me.isPending) return <Loading label="Checking your session" />;
  if (me.isError) return <ErrorState error={me.error} retry={() => void me.refetch()} />;
  if (!me.data) return <LoginPage />;
  return (
    <SessionProvider user={me.data.user} expiresAt={me.data.expiresAt}>
      <Shell />
    </SessionProvider>
  );
}

function Shell() {
  const { path } = useLocation();
  const { user, can, logout } = useSession();
  const main = useRef<HTMLElement>(null);
  const page = pages.find((candidate) => candidate.path === path);
  const visible = pages.filter((candidate) => can(candidate.permission));
  useEffect(() => {
    document.title = `${page?.label ?? 'Not found'} · Airlock console`;
    // Moves focus to the new page's content so keyboard and screen reader users land there.
    main.current?.focus();
  }, [page]);
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} />
          <span>Airlock</span>
        </div>
        <div className="user">
          <span>{user.email}</span> <span className="badge badge-neutral">{user.role}</span>
          <button type="button" className="button secondary small" onClick={logout}>
            Sign out
          </button>
        </div>
      </header>
      <nav className="sidebar" aria-label="Main">
        <ul>
          {visible.map((candidate) => (
            <li key={candidate.path}>
              <Link to={candidate.path} current={candidate.path === path}>
                {candidate.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" ref={main} tabIndex={-1}>
        {page ? (
          can(page.permission) ? (
            page.render()
          ) : (
            <ErrorState error={new Error('Your role does not include this page.')} />
          )
        ) : (
          <>
            <h1>Not found</h1>
            <p>
              There is no page at <code>{path}</code>. <Link to="/">Go to the overview</Link>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}
