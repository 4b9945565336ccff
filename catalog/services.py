"""Writes of the public catalog: administration of the Hugging Face metrics store."""

from __future__ import annotations

from django.db import transaction

from catalog import huggingface, scheduling


@transaction.atomic
def huggingface_cache_refresh() -> dict:
    """Clear the stored Hugging Face metrics and queue a refetch of every public model's.

    The refetch runs in the ``catalog.refresh_all_huggingface_metrics`` task after the
    commit (in-process when Celery runs eagerly, on a worker otherwise).
    """
    cleared = huggingface.clear()
    scheduling.enqueue_on_commit(scheduling.REFRESH_ALL_HUGGINGFACE_METRICS)
    return {"cleared": cleared, "scheduled": True}
