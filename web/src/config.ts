/**
 * Where the API is and which OAuth client the page is. Read once at start from
 * `web-config.json` beside index.html: Dovecote answers it itself (same origin); a community
 * that serves this build from its own site puts a static file there with `api_origin`.
 */
export interface WebConfig {
  /** The API's origin, e.g. `https://chat.example.org`; the page's own origin by default. */
  apiOrigin: string;
  /** The first-party public OAuth client (password + refresh_token grants, revoke). */
  clientId: string;
}

const DEFAULT_CLIENT_ID = 'dovecote-web';

export async function loadConfig(): Promise<WebConfig> {
  let raw: Record<string, unknown> = {};
  try {
    const response = await fetch('/web-config.json', { cache: 'no-store', credentials: 'omit' });
    if (response.ok) raw = (await response.json()) as Record<string, unknown>;
  } catch {
    // Served without a config file: same origin, the default client.
  }
  const origin = typeof raw.api_origin === 'string' && raw.api_origin ? raw.api_origin : location.origin;
  return {
    apiOrigin: new URL(origin).origin,
    clientId: typeof raw.oauth_client_id === 'string' && raw.oauth_client_id ? raw.oauth_client_id : DEFAULT_CLIENT_ID,
  };
}
