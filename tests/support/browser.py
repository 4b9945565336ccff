"""Debian's Chromium for the Playwright tests, and where their screenshots go."""

from __future__ import annotations

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
