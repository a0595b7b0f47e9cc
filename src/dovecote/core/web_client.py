"""Names shared with browser clients: Dovecote's own web page and sites that embed react-ui.

- `X-Dovecote-Connection: <id>`: a random id each page (tab) makes for itself and sends on API
  requests and as `?connection=<id>` on the live socket's URL. A message sent with it is not
  pushed back to the socket opened with the same id (that page already shows it from the
  send's answer); the sender's other sockets still get it (realtime/hub.py).
- `X-Dovecote-Send-Response: list|object`: the shape of the answer to `POST /api/v2/pm/` for
  this request; react-ui reads a list, the seed's default is one object.
- `dovecote-web`: the public OAuth client of the web page (no secret), made by a migration.
"""

from __future__ import annotations

import re
from typing import Literal

from dovecote.core.errors import InvalidInput

CONNECTION_HEADER = "X-Dovecote-Connection"
CONNECTION_QUERY = "connection"
SEND_RESPONSE_HEADER = "X-Dovecote-Send-Response"
FIRST_PARTY_CLIENT_ID = "dovecote-web"

CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)


def connection_id(value: str | None) -> str | None:
    """A connection id from a header or query value: None when absent (blank or the JS
    client's `undefined` too), InvalidInput when malformed."""
    if value is None or value.strip() in ("", "undefined", "null"):
        return None
    if not _CONNECTION_ID.fullmatch(value.strip()):
        raise InvalidInput.field(
            "connection",
            "invalid",
            "A connection id is 8 to 64 letters, digits, '_' or '-'.",
        )
    return value.strip()


def send_response(value: str | None) -> Literal["object", "list"] | None:
    """The answer shape a send asks for: None (the server's default), `object` or `list`."""
    if value is None or not value.strip():
        return None
    shape = value.strip().lower()
    if shape not in ("object", "list"):
        raise InvalidInput.field(
            "send_response", "invalid", f"{SEND_RESPONSE_HEADER} is `list` or `object`."
        )
    return "list" if shape == "list" else "object"
