"""Celery beat's scheduler: the schedule from the database, plus a heartbeat.

django-celery-beat's ``DatabaseScheduler`` reads the schedule from its tables, so operators
change it in the admin without a restart. This subclass also touches the heartbeat file
that the health check (:mod:`config.beat`) reads.
"""

from __future__ import annotations

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from config.beat import HEARTBEAT_NAME


class HeartbeatScheduler(DatabaseScheduler):
    """The database scheduler, touching ``CELERY_STATE_DIR/beat-heartbeat`` at every tick."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        path = settings.CELERY_STATE_DIR / HEARTBEAT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return interval
