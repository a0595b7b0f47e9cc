"""/docs in a real browser: Swagger UI draws the API from the package's own files, under the
page's Content-Security-Policy, with every request to another host blocked."""

from __future__ import annotations

from playwright.sync_api import Browser, Route, expect

from tests.browser.conftest import Server


def test_docs_render_offline_under_their_policy(browser: Browser, server: Server) -> None:
    context = browser.new_context()
    elsewhere: list[str] = []
    violations: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:  # as on an offline host
            elsewhere.append(route.request.url)
            route.abort()

    try:
        context.route("**/*", only_this_server)
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(f"{server.url}/docs")
        expect(page.get_by_text("Send a message").first).to_be_visible()
        expect(page.locator(".opblock").first).to_be_visible()
    finally:
        context.close()

    assert elsewhere == []
    assert violations == []
