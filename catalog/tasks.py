"""Background refresh of Hugging Face metrics."""

from __future__ import annotations

from celery import shared_task

from catalog import huggingface
from catalog.selectors import public_models

# Ids per task, so one slow batch never holds the whole refetch past its time limit.
BATCH_SIZE = 50


@shared_task(
    name="catalog.refresh_huggingface_metrics",
    soft_time_limit=120,
    time_limit=150,
    ignore_result=True,
)
def refresh_huggingface_metrics(hugging_face_ids: list[str]) -> int:
    """Refetch the given ids that are still stale and still used by a public model.

    Idempotent: an id refreshed meanwhile (by a request or another task) is skipped, and an
    id no public model refers to any more is dropped quietly.
    """
    used = set(
        public_models()
        .filter(hugging_face_id__in=hugging_face_ids)
        .values_list("hugging_face_id", flat=True)
    )
    return huggingface.refresh_many([i for i in hugging_face_ids if i in used])


@shared_task(
    name="catalog.refresh_all_huggingface_metrics",
    soft_time_limit=60,
    time_limit=90,
    ignore_result=True,
)
def refresh_all_huggingface_metrics() -> int:
    """Queue a refresh of every Hugging Face id used by a public model, in batches."""
    ids = sorted(
        set(public_models().exclude(hugging_face_id="").values_list("hugging_face_id", flat=True))
    )
    for start in range(0, len(ids), BATCH_SIZE):
        refresh_huggingface_metrics.delay(ids[start : start + BATCH_SIZE])
    return len(ids)
