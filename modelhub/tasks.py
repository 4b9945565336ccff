"""Celery tasks of the domain: thin wrappers that take ids and call a service; the
periodic ones are scheduled by beat."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from modelhub import services

logger = logging.getLogger(__name__)

# One attempt waits at most WEBHOOK_TIMEOUT_SECONDS to connect and as long for the answer.
WEBHOOK_TIME_LIMIT = int(settings.WEBHOOK_TIMEOUT_SECONDS * 2) + 30


@shared_task(
    name="modelhub.deliver_webhook",
    acks_late=True,
    soft_time_limit=WEBHOOK_TIME_LIMIT,
    time_limit=WEBHOOK_TIME_LIMIT + 15,
)
def deliver_webhook(delivery_id: int) -> str:
    """Make one attempt to deliver a webhook event; after a network error or a 5xx answer
    queue the next one with exponential backoff (WEBHOOK_RETRY_BACKOFF_SECONDS, doubling),
    up to WEBHOOK_MAX_ATTEMPTS in all. The delivery row counts the attempts, so the
    schedule survives a worker's restart and a task run twice sends nothing twice."""
    outcome, attempts = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome == services.RETRY:
        delay = settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2 ** (attempts - 1)
        deliver_webhook.apply_async((delivery_id,), countdown=delay)
    elif outcome == services.FAILED:
        logger.warning("Webhook delivery %s failed after %s attempts", delivery_id, attempts)
    return outcome


@shared_task(name="modelhub.purge_expired_responses", soft_time_limit=300, time_limit=360)
def purge_expired_responses() -> int:
    """Delete stored responses older than RESPONSES_RETENTION_DAYS (idempotent)."""
    deleted = services.stored_responses_purge()
    if deleted:
        logger.info("Removed %d stored responses past their retention", deleted)
    return deleted


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
