"""The web page in a real browser (issue 11): two members chat live, with react-ui's own
components making the real calls against `dovecote serve`.

The tests of this module run in order and share one server and one browser context per member
(signing in once is the expensive part). Every request each page makes is recorded with its
answer; a test fails on any answer >= 400 it did not ask for and on any uncaught page error.
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORDS, Member, Server, open_member

DOCS = Path(__file__).resolve().parents[2] / "docs"
THREAD_ITEM = ".SCPrivateMessageThreadItem-root"
SNIPPET = ".SCPrivateMessageSnippetItem-root"
INPUT = ".SCPrivateMessageEditor-root textarea:not([readonly])"
SEND = ".SCPrivateMessageEditor-root button:has-text('send')"


def sign_in(member: Member, path: str, password: str | None = None) -> None:
    page = member.page
    page.goto(path)
    page.fill("input[name=username]", member.name)
    page.fill("input[name=password]", password or PASSWORDS[member.name])
    page.click("button[type=submit]")


def message(page: Page, text: str) -> object:
    return page.locator(THREAD_ITEM).filter(has_text=text)


def send_text(page: Page, text: str) -> None:
    page.locator(INPUT).first.fill(text)
    page.locator(SEND).click()


@pytest.fixture(scope="module")
def alice(browser: Browser, server: Server) -> Iterator[Member]:
    member = open_member(browser, server, "alice")
    yield member
    member.context.close()


@pytest.fixture(scope="module")
def bob(browser: Browser, server: Server) -> Iterator[Member]:
    member = open_member(browser, server, "bob")
    yield member
    member.context.close()


@pytest.fixture(autouse=True)
def _clean_traffic(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no unexpected failing request and no page error on either page."""
    yield
    for name in ("alice", "bob"):
        if name in request.fixturenames:
            request.getfixturevalue(name).traffic.check()


def png(width: int = 48, height: int = 32) -> bytes:
    """A small valid PNG (a colour gradient), made here."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 5 % 256, y * 7 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_signed_out_every_route_shows_sign_in_and_a_wrong_password_says_so(
    server: Server, alice: Member
) -> None:
    page = alice.page
    for path in ("/", "/messages/", f"/messages/{alice.id}/"):
        page.goto(server.url + path)
        expect(page.locator("input[name=username]")).to_be_visible()
        expect(page.locator("input[name=password]")).to_be_visible()
        expect(page.locator("button[type=submit]")).to_be_visible()
    assert page.url == server.url + f"/messages/{alice.id}/"
    document = page.goto(server.url + f"/messages/{alice.id}/")
    assert document is not None
    assert "script-src 'self'" in document.headers["content-security-policy"]
    alice.traffic.expect("POST", r"^/oauth/token/$", 400)
    sign_in(alice, server.url + "/messages/", password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.locator("input[name=username]")).to_have_value("alice")
    expect(page.locator("button[type=submit]")).to_be_enabled()
    assert ("POST", "/oauth/token/", 400) in alice.traffic.requests


def test_a_message_arrives_live_exactly_once_on_both_sides(
    server: Server, alice: Member, bob: Member
) -> None:
    sign_in(bob, server.url + "/messages/")
    expect(bob.page.get_by_role("button", name=re.compile("new message", re.I))).to_be_visible()
    sign_in(alice, server.url + f"/messages/{bob.id}/")
    expect(alice.page.locator(INPUT).first).to_be_visible()

    send_text(alice.page, "Hello Bob, this is Alice")
    expect(message(alice.page, "Hello Bob, this is Alice")).to_have_count(1)
    # bob's inbox shows the new thread without a reload. (react-ui appends a frame to an open
    # thread only when that thread already has a message, so the first one shows in the inbox.)
    snippet = bob.page.locator(SNIPPET).filter(has_text="Hello Bob, this is Alice")
    expect(snippet).to_have_count(1)
    snippet.click()
    expect(bob.page).to_have_url(server.url + f"/messages/{alice.id}/")
    expect(message(bob.page, "Hello Bob, this is Alice")).to_have_count(1)

    send_text(alice.page, "Are you there?")
    expect(message(alice.page, "Are you there?")).to_have_count(1)
    expect(message(bob.page, "Are you there?")).to_have_count(1)  # live, in the open thread

    send_text(bob.page, "Hi Alice! Bob here")
    expect(message(alice.page, "Hi Alice! Bob here")).to_have_count(1)
    expect(message(bob.page, "Hi Alice! Bob here")).to_have_count(1)
    # Still exactly once after the frames have had time to arrive twice.
    alice.page.wait_for_timeout(1500)
    for member in (alice, bob):
        for text in ("Hello Bob, this is Alice", "Are you there?", "Hi Alice! Bob here"):
            expect(message(member.page, text)).to_have_count(1)

    # The socket URL carries the port and the page's connection id (socket.ts).
    port = server.url.rsplit(":", 1)[1]
    for member in (alice, bob):
        assert any(
            re.match(
                rf"ws://127\.0\.0\.1:{port}/ws/notify\?subscribe-user&connection=[\w-]{{8,64}}$", u
            )
            for u in member.traffic.sockets
        ), member.traffic.sockets
    sends = [r for r in alice.traffic.requests if r[:2] == ("POST", "/api/v2/pm/")]
    assert sends == [("POST", "/api/v2/pm/", 201)] * 2


def test_the_senders_other_tab_follows_the_conversation(
    browser: Browser, server: Server, alice: Member, bob: Member
) -> None:
    """Another tab of the sender gets the frame (only the sending page's socket is skipped)."""
    other = alice.context.new_page()  # same context: same member, a new page load and id
    other.set_default_timeout(15_000)
    alice.traffic.attach(other)
    # sessionStorage is per tab: the new tab signs in for itself.
    other.goto(server.url + f"/messages/{bob.id}/")
    other.fill("input[name=username]", "alice")
    other.fill("input[name=password]", PASSWORDS["alice"])
    other.click("button[type=submit]")
    expect(other.locator(INPUT).first).to_be_visible()
    send_text(alice.page, "Sent from the first tab")
    expect(message(other, "Sent from the first tab")).to_have_count(1)
    expect(message(alice.page, "Sent from the first tab")).to_have_count(1)
    expect(message(bob.page, "Sent from the first tab")).to_have_count(1)
    other.close()


def test_an_image_is_shown_to_both(
    server: Server, alice: Member, bob: Member, tmp_path: Path
) -> None:
    image = tmp_path / "gradient.png"
    image.write_bytes(png())
    page = alice.page
    before_bob = bob.page.locator(f"{THREAD_ITEM} img").count()
    page.locator(".SCPrivateMessageEditor-root button:has-text('attach_file')").click()
    with page.expect_file_chooser() as chooser:
        page.locator("button:has-text('upload')").first.click()
    chooser.value.set_files(str(image))
    send = page.locator(".SCPrivateMessageEditor-root button:has-text('send')")
    expect(send).to_be_enabled(timeout=20_000)
    send.click()
    expect(page.locator(f"{THREAD_ITEM} img")).to_have_count(1, timeout=20_000)
    expect(bob.page.locator(f"{THREAD_ITEM} img")).to_have_count(before_bob + 1)
    for member in (alice, bob):
        img = member.page.locator(f"{THREAD_ITEM} img").last
        expect(img).to_be_visible()
        loaded = img.evaluate("i => i.complete && i.naturalWidth > 0")
        assert loaded, f"{member.name}: the image did not load"
    uploads = [r for r in alice.traffic.requests if r[1].startswith("/api/v2/pm/upload/")]
    assert uploads and all(s < 300 for _, _, s in uploads), uploads


def test_delete_within_a_minute_shows_for_both(server: Server, alice: Member, bob: Member) -> None:
    send_text(alice.page, "This one will be deleted")
    mine = message(alice.page, "This one will be deleted")
    expect(mine).to_have_count(1)
    expect(message(bob.page, "This one will be deleted")).to_have_count(1)
    mine.hover()
    mine.locator("button").last.click()
    alice.page.get_by_role("menuitem").first.click()
    dialog = alice.page.get_by_role("dialog")
    dialog.get_by_role("button").last.click()
    expect(message(alice.page, "This one will be deleted")).to_have_count(0)
    # bob's open thread: the message is gone (live, or at the latest on reopening the thread)
    bob.page.reload()
    expect(bob.page.locator(INPUT).first).to_be_visible()
    expect(message(bob.page, "This one will be deleted")).to_have_count(0)
    expect(message(bob.page, "Hi Alice! Bob here")).to_have_count(1)


def test_searching_for_a_recipient_in_new_message(server: Server, alice: Member) -> None:
    page = alice.page
    page.goto(server.url + "/messages/")
    page.get_by_role("button", name=re.compile("new message", re.I)).click()
    field = page.locator(".SCPrivateMessageThread-autocomplete input").first
    field.fill("bo")
    expect(page.get_by_role("option", name=re.compile("bob", re.I))).to_be_visible()
    assert any(r[1].startswith("/api/v2/pm/search/") for r in alice.traffic.requests)


def test_no_composer_for_someone_who_does_not_follow_me(server: Server, alice: Member) -> None:
    page = alice.page
    carol = server.users["carol"]
    page.goto(server.url + f"/messages/{carol}/")
    expect(page.locator(".SCPrivateMessageThread-root")).to_be_visible()
    page.wait_for_function(
        "() => !document.querySelector('.SCPrivateMessageThread-root .MuiSkeleton-root')"
    )
    page.wait_for_timeout(800)
    assert ("GET", f"/api/v2/user/{carol}/", 200) in alice.traffic.requests
    expect(page.locator(INPUT)).to_have_count(0)


def test_the_conversation_survives_a_reload_and_a_screenshot_is_taken(
    server: Server, alice: Member, bob: Member, tmp_path: Path
) -> None:
    page = alice.page
    page.goto(server.url + f"/messages/{bob.id}/")
    expect(message(page, "Hello Bob, this is Alice")).to_have_count(1)
    page.reload()
    expect(message(page, "Hello Bob, this is Alice")).to_have_count(1)
    expect(message(page, "Hi Alice! Bob here")).to_have_count(1)
    page.wait_for_timeout(500)
    target = (
        DOCS / "screenshot-conversation.png"
        if os.environ.get("DOVECOTE_UPDATE_SCREENSHOT")
        else tmp_path / "screenshot-conversation.png"
    )
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000


def test_the_token_is_renewed_before_it_expires(server: Server, alice: Member) -> None:
    """The page renews a minute before expiry, through react-core's handleRefreshToken; the
    renewed token works for the API and the socket."""
    page = alice.page
    page.goto(server.url + f"/messages/{server.users['bob']}/")
    expect(page.locator(INPUT).first).to_be_visible()
    before = page.evaluate("() => JSON.parse(sessionStorage.getItem('dovecote.session'))")
    # Pretend the token expires in 61 s: the page renews it 5 s after the reload.
    before["expiresAt"] = int(time.time() * 1000) + 61_000
    page.evaluate("s => sessionStorage.setItem('dovecote.session', JSON.stringify(s))", before)
    page.reload()
    expect(page.locator(INPUT).first).to_be_visible()
    page.wait_for_function(
        "old => JSON.parse(sessionStorage.getItem('dovecote.session')).accessToken !== old",
        arg=before["accessToken"],
        timeout=20_000,
    )
    after = page.evaluate("() => JSON.parse(sessionStorage.getItem('dovecote.session'))")
    assert after["refreshToken"] != before["refreshToken"]  # rotated
    assert after["expiresAt"] > before["expiresAt"]
    old = httpx.get(
        server.url + "/api/v2/user/me/",
        headers={"Authorization": f"Bearer {after['accessToken']}"},
    )
    assert old.status_code == 200
    send_text(page, "Sent after the renewal")
    expect(message(page, "Sent after the renewal")).to_have_count(1)
    assert ("POST", "/api/v2/pm/", 201) in alice.traffic.requests[-5:]


def test_sign_out_revokes_the_token(server: Server, alice: Member) -> None:
    page = alice.page
    token = page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('dovecote.session')).accessToken"
    )
    page.get_by_test_id("sign-out").click()
    expect(page.locator("input[name=username]")).to_be_visible()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('dovecote.session')") is None
    revoked = ("POST", "/oauth/revoke_token/", 200)
    page.wait_for_function("() => true")  # let the event loop deliver the responses
    for _ in range(50):
        if alice.traffic.requests.count(revoked) >= 2:
            break
        page.wait_for_timeout(100)
    assert alice.traffic.requests.count(revoked) == 2  # the refresh and the access token
    answer = httpx.get(
        server.url + "/api/v2/user/me/", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401
    page.reload()
    expect(page.locator("input[name=username]")).to_be_visible()


def shape(path: str) -> str:
    """A request path with its ids, hashes and query values generalised."""
    path, _, query = path.partition("?")
    path = re.sub(r"/[0-9a-f]{8}-[0-9a-f-]{27,}(?=/|$)", "/<uuid>", path)
    path = re.sub(r"/\d+(?=/|$)", "/<n>", path)
    path = re.sub(r"/assets/([\w.]+?)-[\w-]{8}\.", r"/assets/\1-<hash>.", path)
    keys = sorted({part.split("=")[0] for part in query.split("&") if part})
    return path + ("?" + "&".join(keys) if keys else "")


def test_every_request_of_the_pages(alice: Member, bob: Member, requests_log: Path) -> None:
    """The list of what the page asks for (printed in the log file; all checked above)."""
    seen = sorted({(m, shape(p), s) for m, p, s in alice.traffic.requests + bob.traffic.requests})
    (requests_log / "page-requests.txt").write_text(
        "\n".join(f"{m} {p} {s}" for m, p, s in seen) + "\n"
    )
    paths = {p for _, p, _ in seen}
    for needed in (
        "/api/v2/dynamic_preference/",
        "/api/v2/feature/",
        "/api/v2/user/me/",
        "/api/v2/user/hidden_users_id/",
        "/api/v2/user/<n>/settings/",
        "/api/v2/pm/",
        "/oauth/token/",
        "/oauth/revoke_token/",
    ):
        assert any(p.split("?")[0] == needed for p in paths), (needed, paths)
