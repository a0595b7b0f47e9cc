/**
 * The signed-in session, kept in sessionStorage.
 *
 * Why sessionStorage: it survives a reload (the conversation stays open) but belongs to one tab
 * and goes when the tab closes, so a token does not outlive the browsing session on a shared
 * computer. It also keeps each tab's OAuth refresh chain its own: Dovecote rotates refresh
 * tokens and treats a reused one as theft (the whole chain is revoked), so two tabs refreshing
 * one shared localStorage pair would sign each other out. The cost: each new tab signs in.
 * Any script on the page could read either storage; the Content-Security-Policy (scripts from
 * the page's own origin only) is what keeps foreign scripts off the page.
 */
export type SessionKind = 'OAuth' | 'JWT';

export interface StoredSession {
  kind: SessionKind;
  accessToken: string;
  refreshToken?: string;
  /** Epoch milliseconds when the access token expires (OAuth); absent for a JWT hand-off. */
  expiresAt?: number;
}

const KEY = 'dovecote.session';

export function loadSession(): StoredSession | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as StoredSession;
    return value && typeof value.accessToken === 'string' ? value : null;
  } catch {
    return null;
  }
}

export function saveSession(session: StoredSession): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

export function currentAccessToken(): string | null {
  return loadSession()?.accessToken ?? null;
}

interface TokenAnswer {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
}

export class SignInError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function tokenRequest(apiOrigin: string, fields: Record<string, string>): Promise<StoredSession> {
  const response = await fetch(`${apiOrigin}/oauth/token/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) {
    let code = '';
    try {
      code = String(((await response.json()) as { error?: string }).error ?? '');
    } catch {
      // not JSON: keep the status
    }
    if (code === 'invalid_grant') throw new SignInError('Wrong username or password.', response.status);
    if (response.status === 429) {
      throw new SignInError('Too many attempts. Wait a minute and try again.', response.status);
    }
    throw new SignInError(`Sign-in failed (${response.status}${code ? `, ${code}` : ''}).`, response.status);
  }
  const answer = (await response.json()) as TokenAnswer;
  return {
    kind: 'OAuth',
    accessToken: answer.access_token,
    refreshToken: answer.refresh_token,
    expiresAt: answer.expires_in ? Date.now() + answer.expires_in * 1000 : undefined,
  };
}

export function passwordGrant(apiOrigin: string, clientId: string, username: string, password: string) {
  return tokenRequest(apiOrigin, { grant_type: 'password', client_id: clientId, username, password });
}

export function refreshGrant(apiOrigin: string, clientId: string, refreshToken: string) {
  return tokenRequest(apiOrigin, { grant_type: 'refresh_token', client_id: clientId, refresh_token: refreshToken });
}

/**
 * Revokes the refresh token and the access token, both at once; `keepalive` lets the requests
 * finish even when the tab is closed or reloaded right after signing out.
 */
export async function revoke(apiOrigin: string, clientId: string, session: StoredSession): Promise<void> {
  const tokens = [session.refreshToken, session.accessToken].filter((t): t is string => Boolean(t));
  await Promise.all(
    tokens.map((token) =>
      fetch(`${apiOrigin}/oauth/revoke_token/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ client_id: clientId, token }),
        credentials: 'omit',
        cache: 'no-store',
        keepalive: true,
      }).catch(() => undefined), // offline: the session is cleared locally all the same
    ),
  );
}

/**
 * A community that signs its members' JWTs links to `/messages/#token=<JWT>`. The fragment is
 * never sent to any server (so never in a server or proxy log); it is read here and removed from
 * the address bar and history at once.
 */
export function takeHandOffToken(): StoredSession | null {
  const hash = location.hash.startsWith('#') ? location.hash.slice(1) : '';
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get('token');
  if (!token) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  return { kind: 'JWT', accessToken: token };
}
