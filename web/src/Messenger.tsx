import { useEffect, useMemo } from 'react';
import { SCContextProvider, SCSettingsType, SCUserContextType, useSCUser } from '@selfcommunity/react-core';
import { PrivateMessageComponent } from '@selfcommunity/react-ui';
import { http } from '@selfcommunity/api-services';
import { SCAuthTokenType } from '@selfcommunity/types';
import theme from '@selfcommunity/react-theme-default';
import { CONNECTION_HEADER, CONNECTION_ID, SEND_RESPONSE_HEADER } from './connection';
import { navigate, useRoute } from './routes';
import { loadSession, refreshGrant, saveSession, StoredSession } from './session';

interface Props {
  apiOrigin: string;
  clientId: string;
  session: StoredSession;
  onSignOut: () => void;
  onExpired: () => void;
}

// Sent with every API call: the page's connection id (so this page's own socket is not sent the
// frame of a message it just sent) and the list form of the send's answer, which react-ui reads.
http.setDefaultHeader({ name: CONNECTION_HEADER, value: CONNECTION_ID });
http.setDefaultHeader({ name: SEND_RESPONSE_HEADER, value: 'list', methods: ['post'] });

/** How long before expiry an access token is renewed. */
const REFRESH_MARGIN_MS = 60_000;

/** Renews the OAuth access token before it expires, through react-core's refreshSession(). */
function TokenRenewal({ onExpired }: { onExpired: () => void }) {
  const scUser: SCUserContextType = useSCUser();
  useEffect(() => {
    let timer: number | undefined;
    const schedule = () => {
      const stored = loadSession();
      if (!stored || stored.kind !== 'OAuth' || !stored.expiresAt || !stored.refreshToken) return;
      const wait = Math.max(5_000, stored.expiresAt - Date.now() - REFRESH_MARGIN_MS);
      timer = window.setTimeout(() => {
        scUser
          .refreshSession()
          .then(schedule)
          .catch(() => onExpired());
      }, Math.min(wait, 2 ** 31 - 1));
    };
    schedule();
    return () => window.clearTimeout(timer);
  }, [scUser.user?.id]);
  return null;
}

function Messages() {
  const route = useRoute();
  const scUser: SCUserContextType = useSCUser();
  return (
    <div className="dc-shell">
      <header className="dc-bar">
        <strong>Messages</strong>
        <span>
          {scUser.user && <span className="dc-who">{scUser.user.username}</span>}
          <button type="button" onClick={() => scUser.logout()} data-testid="sign-out">
            Sign out
          </button>
        </span>
      </header>
      <div className="dc-main">
        <PrivateMessageComponent
          id={route.userId ?? undefined}
          onItemClick={(id: unknown) => {
            if (typeof id === 'number' || /^\d+$/.test(String(id))) navigate(`/messages/${id}/`);
          }}
          onThreadBack={() => navigate('/messages/')}
          // react-ui calls it (unguarded) when a thread has no messages yet and it shows the
          // "new message" form for that member instead; the route stays /messages/<user_id>/.
          onSingleMessageOpen={() => undefined}
        />
      </div>
    </div>
  );
}

export default function Messenger({ apiOrigin, clientId, session, onSignOut, onExpired }: Props) {
  // Built once per sign-in: react-core resets its whole state when its conf changes.
  const conf = useMemo(
    () => ({
      portal: apiOrigin,
      locale: { default: navigator.language?.toLowerCase().startsWith('it') ? 'it' : 'en' },
      theme: theme as unknown as SCSettingsType['theme'],
      notifications: {
        webSocket: { secure: apiOrigin.startsWith('https:'), disableToastMessage: true },
      },
      session: {
        type: session.kind,
        clientId,
        authToken: {
          accessToken: session.accessToken,
          refreshToken: session.refreshToken,
          tokenType: 'Bearer',
          expiresIn: session.expiresAt ? Math.round((session.expiresAt - Date.now()) / 1000) : undefined,
        },
        handleRefreshToken:
          session.kind === 'OAuth'
            ? async (): Promise<SCAuthTokenType> => {
                const current = loadSession();
                if (!current?.refreshToken) throw new Error('No refresh token.');
                const renewed = await refreshGrant(apiOrigin, clientId, current.refreshToken);
                saveSession(renewed);
                return {
                  accessToken: renewed.accessToken,
                  refreshToken: renewed.refreshToken,
                  tokenType: 'Bearer',
                  expiresIn: renewed.expiresAt ? Math.round((renewed.expiresAt - Date.now()) / 1000) : undefined,
                };
              }
            : undefined,
        handleLogout: onSignOut,
      },
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [apiOrigin, clientId, session.accessToken],
  );
  return (
    <SCContextProvider conf={conf}>
      <TokenRenewal onExpired={onExpired} />
      <Messages />
    </SCContextProvider>
  );
}
