import { lazy, StrictMode, Suspense, useCallback, useState } from 'react';
import { createRoot } from 'react-dom/client';
import './styles.css';
import { loadConfig, WebConfig } from './config';
import { navigate } from './routes';
import { clearSession, loadSession, revoke, saveSession, StoredSession, takeHandOffToken } from './session';
import SignIn from './SignIn';
import { installSocketWrapper } from './socket';

// The messenger (react-core, react-ui, MUI) loads only once someone is signed in: the sign-in
// page paints from the small entry chunk.
const Messenger = lazy(() => import('./Messenger'));

function App({ config }: { config: WebConfig }) {
  const [session, setSession] = useState<StoredSession | null>(() => loadSession());
  const [notice, setNotice] = useState<string | undefined>();

  const signedIn = useCallback((next: StoredSession) => {
    saveSession(next);
    setNotice(undefined);
    setSession(next);
  }, []);

  const signOut = useCallback(() => {
    const current = loadSession();
    clearSession();
    setSession(null);
    setNotice('You are signed out.');
    if (current?.kind === 'OAuth') void revoke(config.apiOrigin, config.clientId, current);
  }, [config]);

  const expired = useCallback(() => {
    clearSession();
    setSession(null);
    setNotice('Your session has ended. Sign in again.');
  }, []);

  if (!session) {
    return <SignIn apiOrigin={config.apiOrigin} clientId={config.clientId} notice={notice} onSignedIn={signedIn} />;
  }
  return (
    <Suspense fallback={<div className="dc-loading">Loading messages…</div>}>
      <Messenger
        key={session.accessToken}
        apiOrigin={config.apiOrigin}
        clientId={config.clientId}
        session={session}
        onSignOut={signOut}
        onExpired={expired}
      />
    </Suspense>
  );
}

async function start() {
  if (location.pathname === '/' || !location.pathname.startsWith('/messages')) navigate('/messages/', true);
  const handOff = takeHandOffToken();
  if (handOff) saveSession(handOff);
  const config = await loadConfig();
  installSocketWrapper(config.apiOrigin); // before react-core opens its socket
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <App config={config} />
    </StrictMode>,
  );
}

void start();
