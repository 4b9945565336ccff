"""Writes of the public catalog: administration of the Hugging Face metrics store."""

from __future__ import annotations

from django.db import transaction

from catalog import huggingface


@transaction.atomic
def huggingface_cache_refresh() -> dict:
    """Clear the stored Hugging Face metrics and queue a refetch of every public model's.

    The refetch runs in the ``catalog.refresh_all_huggingface_metrics`` task after the
    commit (in-process when Celery runs eagerly, on a worker otherwise).
    """
    from catalog.tasks import refresh_all_huggingface_metrics

    cleared = huggingface.clear()
    transaction.on_commit(refresh_all_huggingface_metrics.delay)
    return {"cleared": cleared, "scheduled": True}
