"""Celery tasks of the domain: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task

from modelhub import services

logger = logging.getLogger(__name__)

# A long backlog (retention switched on over years of rows) is deleted over several
# nights: each run stops after RETENTION_MAX_SECONDS, well within its time limits.
RETENTION_MAX_SECONDS = 1800


@shared_task(name="modelhub.delete_expired_metrics", soft_time_limit=3000, time_limit=3300)
def delete_expired_metrics() -> dict:
    """Delete metric rows older than METRIC_RETENTION_DAYS (beat runs it every night)."""
    result = services.metrics_delete_expired(max_seconds=RETENTION_MAX_SECONDS)
    logger.info(
        "Deleted %d expired metric rows in %d batches%s",
        result.deleted,
        result.batches,
        "" if result.finished else "; more are left for the next run",
    )
    return {"deleted": result.deleted, "batches": result.batches, "finished": result.finished}
