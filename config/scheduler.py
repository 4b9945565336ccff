"""Celery beat's scheduler: the schedule from the database, plus a heartbeat.

django-celery-beat's ``DatabaseScheduler`` reads the schedule from its tables, so operators
change it in the admin without a restart. This subclass also touches the heartbeat file
that the health check (:mod:`config.beat`) reads.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from config.beat import heartbeat_path


class HeartbeatScheduler(DatabaseScheduler):
    """The database scheduler, touching :func:`config.beat.heartbeat_path` at every tick."""

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        path = heartbeat_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return interval
