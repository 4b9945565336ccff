"""Celery tasks of the catalog sync: thin wrappers that take slugs and call the pipeline."""

from __future__ import annotations

import logging

from celery import chord, shared_task
from django.conf import settings
from django.db import transaction

from modelhub.models import Organization, Provider
from sync import discovery, locks, pipeline, policies
from sync.fetch import FetchError
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
    result = pipeline.sync_provider(spec=spec, dry_run=dry_run, trigger=trigger)
    if result.transient and self.request.retries < self.max_retries:
        raise self.retry(countdown=30 * 2**self.request.retries)
    return result.details()


@shared_task(
    name="sync.sync_provider_policies",
    max_retries=3,
    autoretry_for=(FetchError,),
    retry_backoff=30,
    soft_time_limit=120,
    time_limit=180,
)
def sync_provider_policies() -> int:
    return policies.sync_provider_policies()


@shared_task(name="sync.release_sync_lock", soft_time_limit=30, time_limit=60)
def release_sync_lock(results=None, *, token: str) -> None:
    """Chord callback of ``sync.sync_all``: every provider task finished, the next run may start."""
    locks.release_sync_lock(token)


@shared_task(name="sync.sync_all", soft_time_limit=60, time_limit=120)
def sync_all(dry_run: bool = False, trigger: str = "celery") -> dict:
    """Fan out: one ``sync.sync_provider`` task per provider that can be synced here.

    Runs never overlap: the lock is held until the last provider task has finished (a
    chord's callback releases it; ``SYNC_LOCK_SECONDS`` bounds it if a worker dies). A run
    that finds the lock taken returns at once, saying so. Providers that cannot be synced
    here (no key) are named in the summary with the reason.
    """
    token = locks.acquire_sync_lock()
    if token is None:
        logger.info("sync all: skipped: another catalog sync is still running")
        return {"status": "skipped", "reason": "another catalog sync is still running"}
    skipped = {spec.slug: spec.skip_reason() for spec in all_specs() if spec.skip_reason()}
    slugs = [spec.slug for spec in all_specs() if spec.slug not in skipped]
    if skipped:
        logger.info(
            "sync all: %d providers skipped: %s",
            len(skipped),
            "; ".join(f"{slug} ({reason})" for slug, reason in skipped.items()),
        )
    header = [sync_provider.si(slug, dry_run=dry_run, trigger=trigger) for slug in slugs]
    if not dry_run:
        header.append(sync_provider_policies.si())
    try:
        chord(header)(release_sync_lock.s(token=token))
    except Exception:
        locks.release_sync_lock(token)
        raise
    return {"status": "queued", "queued": slugs, "skipped": skipped}


def enqueue_provider_syncs(*, slugs: list[str], trigger: str) -> None:
    """Queue provider syncs once the caller's transaction commits (admin actions)."""
    for slug in slugs:
        transaction.on_commit(lambda slug=slug: sync_provider.delay(slug, trigger=trigger))


@shared_task(name="sync.discover_provider", soft_time_limit=120, time_limit=180)
def discover_provider(provider_id: int, organization_id: int) -> dict:
    """Discover a private provider's models; a provider deleted since it was queued (or
    no longer the organization's) is skipped quietly."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if (
        organization is None
        or not Provider.objects.for_org(organization).filter(pk=provider_id).exists()
    ):
        logger.info(
            "discover task: provider %s of organization %s is gone", provider_id, organization_id
        )
        return {"status": "gone"}
    try:
        result = discovery.discover_provider_models(provider_id, organization_id)
    except discovery.DiscoveryError as exc:
        logger.warning("discover task: provider %s: %s", provider_id, exc.message)
        return {"status": "failed", "error": exc.message}
    return {"status": "success", **result.as_dict()}
