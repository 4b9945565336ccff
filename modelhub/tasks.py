"""Celery tasks of the domain: thin wrappers that take ids and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from modelhub import services

logger = logging.getLogger(__name__)


@shared_task(
    name="modelhub.deliver_webhook",
    bind=True,
    # Retries after the first attempt; each attempt is recorded on the delivery row.
    max_retries=max(settings.WEBHOOK_MAX_ATTEMPTS - 1, 0),
    acks_late=True,
    soft_time_limit=max(int(settings.WEBHOOK_TIMEOUT_SECONDS * 3), 30),
    time_limit=max(int(settings.WEBHOOK_TIMEOUT_SECONDS * 3), 30) + 30,
)
def deliver_webhook(self, delivery_id: int) -> str:
    """Deliver one webhook event; network errors and 5xx answers are retried with
    exponential backoff (WEBHOOK_RETRY_BACKOFF_SECONDS, doubling) up to
    WEBHOOK_MAX_ATTEMPTS attempts. A delivery already made or given up is left alone."""
    outcome = services.webhook_delivery_attempt(
        delivery_id=delivery_id, last_attempt=self.request.retries >= self.max_retries
    )
    if outcome == services.RETRY:
        raise self.retry(countdown=settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2**self.request.retries)
    if outcome == services.FAILED:
        logger.warning("Webhook delivery %s failed; see its last_error", delivery_id)
    return outcome
