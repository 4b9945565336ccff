"""The health check of Celery beat: ``python -m config.beat`` exits 0 while beat ticks.

Beat runs :class:`config.scheduler.HeartbeatScheduler`, which touches a heartbeat file at
every tick. A tick runs only when beat's loop is alive and has just read the schedule from
the database (``schedule_changed`` queries it each time), so a fresh heartbeat proves more
than a running process: the loop is not stuck and the database answered it. This module
imports no Django, so the check stays cheap.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import environ

HEARTBEAT_NAME = "beat-heartbeat"
# Beat ticks at least every beat_max_loop_interval (5 s for the database scheduler); a
# heartbeat older than this means the loop stopped.
STALE_AFTER_SECONDS = 120


def state_dir() -> Path:
    """``CELERY_STATE_DIR`` as the settings read it (environment, then the .env file),
    without loading Django so the check stays cheap."""
    configured = os.environ.get("CELERY_STATE_DIR") or ""
    if not configured:
        root = Path(__file__).resolve().parent.parent
        env_file = Path(os.environ.get("DJANGO_ENV_FILE") or root / ".env")
        if env_file.exists():
            environ.Env.read_env(str(env_file))
            configured = os.environ.get("CELERY_STATE_DIR") or ""
    return Path(configured or Path(tempfile.gettempdir()) / "modelhub-celery")


def heartbeat_path() -> Path:
    return state_dir() / HEARTBEAT_NAME


def heartbeat_age(now: float | None = None) -> float | None:
    """Seconds since beat's last tick, or ``None`` when it never ticked here."""
    try:
        modified = heartbeat_path().stat().st_mtime
    except FileNotFoundError:
        return None
    return (now or time.time()) - modified


def main() -> int:
    age = heartbeat_age()
    if age is None:
        print(f"unhealthy: no beat heartbeat at {heartbeat_path()}")
        return 1
    if age > STALE_AFTER_SECONDS:
        print(f"unhealthy: beat's last tick was {age:.0f}s ago")
        return 1
    print(f"ok: beat ticked {age:.0f}s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
