/**
 * This page load's connection id. The page sends it with every API request
 * (`X-Dovecote-Connection`) and in its WebSocket URL (`connection=`); the server then leaves
 * the new-message frame of a message this page sent out of this page's own socket (react-ui
 * already shows the POST's answer), while the member's other tabs and devices still get it.
 * One id per page load, kept in memory only: a duplicated tab must not share it.
 */
function makeId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let text = '';
  bytes.forEach((b) => (text += String.fromCharCode(b)));
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export const CONNECTION_ID = makeId();
export const CONNECTION_HEADER = 'X-Dovecote-Connection';
/** Asks POST /api/v2/pm/ for the list form of its answer, which react-ui reads. */
export const SEND_RESPONSE_HEADER = 'X-Dovecote-Send-Response';
