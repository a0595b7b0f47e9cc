import { CONNECTION_ID } from './connection';
import { currentAccessToken } from './session';

/**
 * react-core builds its socket URL as `ws(s)://<portal host name>/ws/notify?subscribe-user`:
 * the host name without the port, which is right behind a proxy on 80/443 but not for
 * `http://127.0.0.1:8000/`. Before react-core starts, the page wraps `WebSocket` so that a
 * socket to the API's host and `/ws/notify` gets
 *   - the API's port (`new URL(apiOrigin).port`),
 *   - this page load's `connection=<id>` (see connection.ts),
 *   - the current access token as its sub-protocol (`__<token>`): react-core keeps the token it
 *     was started with, and a reconnect after a refresh must not use a rotated-out one.
 * Every other socket is left alone. react-core's and react-ui's code stay unchanged.
 */
export function installSocketWrapper(apiOrigin: string): void {
  const api = new URL(apiOrigin);
  const Native = window.WebSocket;
  if ((Native as unknown as { dovecote?: boolean }).dovecote) return;

  class DovecoteWebSocket extends Native {
    static dovecote = true;
    constructor(url: string | URL, protocols?: string | string[]) {
      const target = new URL(String(url), location.href);
      let chosen = protocols;
      if (target.hostname === api.hostname && target.pathname.replace(/\/+$/, '') === '/ws/notify') {
        target.port = api.port;
        target.searchParams.set('connection', CONNECTION_ID);
        const token = currentAccessToken();
        if (token && Array.isArray(protocols)) {
          chosen = protocols.map((p) => (p.startsWith('__') ? `__${token}` : p));
        }
      }
      super(target.toString().replace('subscribe-user=&', 'subscribe-user&'), chosen);
    }
  }
  window.WebSocket = DovecoteWebSocket;
}
