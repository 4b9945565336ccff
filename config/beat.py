"""Celery beat's scheduler, and the health check of the beat process.

Beat reads its schedule from the database (django-celery-beat's ``DatabaseScheduler``), so
operators change it in the admin without a restart. This scheduler also touches a
heartbeat file at every tick. A tick runs only when beat's loop is alive and has just read
the schedule from the database (``schedule_changed`` queries it each time), so a fresh
heartbeat proves more than a running process: the loop is not stuck and the database
answered it. ``python -m config.beat`` exits 0 while the heartbeat is fresh; it is the
container's health check.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from django_celery_beat.schedulers import DatabaseScheduler

HEARTBEAT_NAME = "beat-heartbeat"
# Beat ticks at least every beat_max_loop_interval (5 s for the database scheduler); a
# heartbeat older than this means the loop stopped.
STALE_AFTER_SECONDS = 120


def state_dir() -> Path:
    """``CELERY_STATE_DIR``, read without Django so the health check stays cheap."""
    configured = os.environ.get("CELERY_STATE_DIR") or ""
    return Path(configured or Path(tempfile.gettempdir()) / "modelhub-celery")


def heartbeat_path() -> Path:
    return state_dir() / HEARTBEAT_NAME


class HeartbeatScheduler(DatabaseScheduler):
    """The database scheduler, touching :func:`heartbeat_path` at every tick."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        path = heartbeat_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return interval


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
