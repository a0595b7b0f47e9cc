"""The same build served from another origin (a community's own site) talks to the API across
origins when DOVECOTE_CORS_ORIGINS allows that origin (the session's server allows
STATIC_ORIGIN). The static copy says where the API is in its own web-config.json."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from dovecote.webapp.router import STATIC
from tests.browser.conftest import PASSWORDS, STATIC_ORIGIN, STATIC_PORT, Server, open_member

INPUT = ".SCPrivateMessageEditor-root textarea:not([readonly])"


class StaticSite(SimpleHTTPRequestHandler):
    """A plain static server: the build's files, index.html for the page's routes."""

    config: bytes = b"{}"

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/web-config.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config)))
            self.end_headers()
            self.wfile.write(self.config)
            return
        if not path.startswith("/assets/"):
            self.path = "/index.html"
        super().do_GET()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(server: Server) -> Iterator[str]:
    handler = type(
        "Site",
        (StaticSite,),
        {
            "config": json.dumps(
                {"api_origin": server.url, "oauth_client_id": "dovecote-web"}
            ).encode()
        },
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", STATIC_PORT), partial(handler, directory=str(STATIC)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield STATIC_ORIGIN
    httpd.shutdown()
    httpd.server_close()


def test_the_page_on_another_origin_signs_in_sends_and_receives(
    browser: Browser, server: Server, site: str
) -> None:
    bob = open_member(browser, server, "bob", base=site)
    alice = open_member(browser, server, "alice", base=site)
    try:
        for member, path in ((bob, "/messages/"), (alice, f"/messages/{server.users['bob']}/")):
            member.page.goto(site + path)
            member.page.fill("input[name=username]", member.name)
            member.page.fill("input[name=password]", PASSWORDS[member.name])
            member.page.click("button[type=submit]")
        expect(alice.page.locator(INPUT).first).to_be_visible()
        expect(bob.page.get_by_text("Create New Message")).to_be_visible()

        alice.page.locator(INPUT).first.fill("Hello from another origin")
        alice.page.locator(".SCPrivateMessageEditor-root button:has-text('send')").click()
        sent = alice.page.locator(".SCPrivateMessageThreadItem-root").filter(
            has_text="Hello from another origin"
        )
        expect(sent).to_have_count(1)
        snippet = bob.page.locator(".SCPrivateMessageSnippetItem-root").filter(
            has_text="Hello from another origin"
        )
        expect(snippet).to_have_count(1)  # live, over the API origin's socket

        for member in (alice, bob):
            member.traffic.check()
            api = [r for r in member.traffic.requests if r[1].startswith(server.url)]
            assert any(r[:2] == ("GET", server.url + "/api/v2/user/me/") for r in api)
            # the page itself came from the site; every API call went to the API's origin
            assert ("GET", "/web-config.json", 200) in member.traffic.requests
            port = server.url.rsplit(":", 1)[1]
            assert any(f"127.0.0.1:{port}/ws/notify" in u for u in member.traffic.sockets)
        assert ("POST", server.url + "/api/v2/pm/", 201) in alice.traffic.requests
    finally:
        alice.context.close()
        bob.context.close()
