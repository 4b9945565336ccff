"""What the machine running the suite offers."""

from __future__ import annotations

import os

# CI (.ci/run) starts PostgreSQL and Redis and sets this: tests that need them fail there
# instead of skipping.
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
