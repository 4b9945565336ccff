"""Celery tasks of the domain: thin wrappers around services, scheduled by beat."""

from __future__ import annotations

import logging

from celery import shared_task

from modelhub.services import stored_responses_purge

logger = logging.getLogger(__name__)


@shared_task(name="modelhub.purge_expired_responses", soft_time_limit=300, time_limit=360)
def purge_expired_responses() -> int:
    """Delete stored responses older than RESPONSES_RETENTION_DAYS (idempotent)."""
    deleted = stored_responses_purge()
    if deleted:
        logger.info("Removed %d stored responses past their retention", deleted)
    return deleted
