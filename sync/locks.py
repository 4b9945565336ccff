"""The lock that keeps two full catalog syncs (beat and an operator's click) apart."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.cache import cache

SYNC_LOCK_KEY = "sync:all:lock"


def acquire_sync_lock() -> str | None:
    """Take the lock of a full catalog sync; a token to release it with, or ``None``.

    ``cache.add`` is atomic in Redis (production) and in local memory (the embedded setup,
    where Celery runs eagerly in this one process), so one mechanism serves both.
    """
    token = uuid.uuid4().hex
    if cache.add(SYNC_LOCK_KEY, token, timeout=settings.SYNC_LOCK_SECONDS):
        return token
    return None


def release_sync_lock(token: str) -> None:
    """Release the lock if ``token`` still holds it (an expired lock may be another run's)."""
    if cache.get(SYNC_LOCK_KEY) == token:
        cache.delete(SYNC_LOCK_KEY)
