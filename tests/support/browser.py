"""Debian's Chromium for the Playwright tests, and where their screenshots go."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The browser tests run on one xdist worker (``--dist loadgroup``): two Chromiums at once
# on a small CI machine starve the live server and the pages time out.
BROWSER_GROUP = pytest.mark.xdist_group("browser")


@contextlib.contextmanager
def launched_chromium():
    """Debian's Chromium under Playwright; skipped without it, failed when CI needs it."""
    from tests.support.environment import REQUIRE_SERVICES

    if not Path(CHROMIUM).exists():
        if REQUIRE_SERVICES:
            pytest.fail(f"Chromium not found at {CHROMIUM}; .ci/run installs Debian's chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
