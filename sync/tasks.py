"""Celery tasks of the catalog sync: thin wrappers that take slugs and call the services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

from sync import services
from sync.registry import all_specs, get_spec

logger = logging.getLogger("sync")

# Fetching and writing 50,000 models takes seconds; the limits only stop a hung upstream.
TIME_LIMIT = settings.SYNC_TASK_TIME_LIMIT
SOFT_TIME_LIMIT = max(TIME_LIMIT - 60, 30)


@shared_task(
    name="sync.sync_provider",
    bind=True,
    max_retries=3,
    acks_late=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def sync_provider(self, slug: str, dry_run: bool = False, trigger: str = "celery") -> dict:
    """Sync one provider; timeouts, 5xx and 429 are retried with exponential backoff."""
    spec = get_spec(slug)
    if spec is None:
        logger.warning("sync task: unknown provider %s", slug)
        return {"provider": slug, "status": "unknown"}
    result = services.sync_provider(spec=spec, dry_run=dry_run, trigger=trigger)
    if result.transient and self.request.retries < self.max_retries:
        raise self.retry(countdown=30 * 2**self.request.retries)
    return result.details()


@shared_task(
    name="sync.sync_provider_policies",
    max_retries=3,
    autoretry_for=(services.FetchError,),
    retry_backoff=30,
    soft_time_limit=120,
    time_limit=180,
)
def sync_provider_policies() -> int:
    return services.sync_provider_policies()


@shared_task(name="sync.sync_all", soft_time_limit=60, time_limit=120)
def sync_all(dry_run: bool = False, trigger: str = "celery") -> list[str]:
    """Fan out: one ``sync.sync_provider`` task per provider that can be synced here."""
    slugs = [spec.slug for spec in all_specs() if not spec.skip_reason()]
    for slug in slugs:
        sync_provider.delay(slug, dry_run=dry_run, trigger=trigger)
    if not dry_run:
        sync_provider_policies.delay()
    return slugs


def enqueue_provider_syncs(*, slugs: list[str], trigger: str) -> None:
    """Queue provider syncs once the caller's transaction commits (admin actions)."""
    for slug in slugs:
        transaction.on_commit(lambda slug=slug: sync_provider.delay(slug, trigger=trigger))
