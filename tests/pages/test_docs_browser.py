"""Swagger UI and ReDoc render in headless Chromium without a single request off this
machine: every request that leaves loopback is recorded and refused."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.browser import (
    ARTIFACTS,
    BROWSER_GROUP,
    launched_chromium,
)

pytestmark = BROWSER_GROUP

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture
def chromium(transactional_db):
    with launched_chromium() as browser:
        yield browser


def _guarded_page(browser):
    """A page whose requests off loopback are aborted and listed in ``page.foreign``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    foreign: list[str] = []

    def guard(route):
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    page.route("**/*", guard)
    page.foreign = foreign
    return page


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/api/redoc/", "text=Create a chat completion"),
        ("/api/docs/", '[data-path="/v1/chat/completions"]'),
    ],
)
def test_docs_render_offline(live_server, chromium, path, rendered):
    page = _guarded_page(chromium)
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector(rendered, state="attached", timeout=20_000)
    page.wait_for_load_state("networkidle")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"docs{path.replace('/', '-').rstrip('-')}.png"))
    assert page.foreign == []
    page.close()
