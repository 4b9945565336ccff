"""Queueing of the catalog's Celery tasks by name, after the surrounding commit.

The Hugging Face store queues refreshes that :mod:`catalog.tasks` runs with the store's
own functions; naming the task here, instead of importing it, keeps the store free of
an import of its own tasks. The tasks module is imported when the app is ready
(:class:`catalog.apps.CatalogConfig`), so the name is always registered.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

REFRESH_HUGGINGFACE_METRICS = "catalog.refresh_huggingface_metrics"
REFRESH_ALL_HUGGINGFACE_METRICS = "catalog.refresh_all_huggingface_metrics"


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Queue ``task_name`` once the current transaction commits (now, outside of one).

    ``Task.delay`` rather than ``send_task``: it honours eager mode, the embedded setup.
    """
    transaction.on_commit(lambda: current_app.tasks[task_name].delay(*args))
