"""Read side of the sync for the admin API (``/admin/model-sync/``): overview and status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q
from django.utils import timezone

from modelhub.models import Model, Provider, SyncRun, SyncStatus
from sync.registry import all_specs


def provider_overview() -> list[dict[str, Any]]:
    """Every registered provider with its key status, model counts and last runs."""
    rows = {
        p.slug: p
        for p in Provider.objects.global_rows().annotate(
            model_count=Count("models"),
            active_model_count=Count("models", filter=Q(models__is_active=True)),
        )
    }
    last_runs = _last_runs()
    overview = []
    for spec in all_specs():
        provider = rows.get(spec.slug)
        last, last_ok = last_runs.get(spec.slug, (None, None))
        overview.append(
            {
                "slug": spec.slug,
                "name": spec.name,
                "provider_id": provider.pk if provider else None,
                "env_var": spec.env_var,
                "key_configured": spec.key_configured,
                "key_required": spec.auth_required,
                "syncable": not spec.skip_reason(),
                "skip_reason": spec.skip_reason(),
                "model_count": provider.model_count if provider else 0,
                "active_model_count": provider.active_model_count if provider else 0,
                "last_synced_at": provider.last_synced_at.isoformat()
                if provider and provider.last_synced_at
                else None,
                "last_run": _run_summary(last),
                "last_success_at": last_ok.finished_at.isoformat()
                if last_ok and last_ok.finished_at
                else None,
            }
        )
    return overview


def _last_runs() -> dict[str, tuple[SyncRun | None, SyncRun | None]]:
    """Latest run and latest successful real run per provider, in two queries."""

    def newest(runs) -> dict[str, SyncRun]:
        ids = runs.values("provider_slug").annotate(last=Max("id")).values("last")
        return {run.provider_slug: run for run in SyncRun.objects.filter(id__in=ids)}

    latest = newest(SyncRun.objects.all())
    good = newest(
        SyncRun.objects.filter(status__in=[SyncStatus.SUCCESS, SyncStatus.PARTIAL], dry_run=False)
    )
    return {slug: (latest.get(slug), good.get(slug)) for slug in latest.keys() | good.keys()}


def _run_summary(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_ms": run.duration_ms,
        "models_fetched": run.models_fetched,
        "models_transformed": run.models_transformed,
        "models_skipped": run.models_skipped,
        "models_created": run.models_created,
        "models_updated": run.models_updated,
        "models_deactivated": run.models_deactivated,
        "error": run.error,
    }


def sync_status() -> dict[str, Any]:
    """Totals, the last run per provider and the providers whose data is stale."""
    interval = dt.timedelta(hours=settings.SYNC_INTERVAL_HOURS)
    cutoff = timezone.now() - interval
    last_runs = _last_runs()
    providers = Provider.objects.global_rows()
    stale = []
    runs = {}
    skipped = {}
    for spec in all_specs():
        last, last_ok = last_runs.get(spec.slug, (None, None))
        runs[spec.slug] = _run_summary(last)
        if spec.skip_reason():
            skipped[spec.slug] = spec.skip_reason()
            continue
        if last_ok is None or (last_ok.finished_at or last_ok.started_at) < cutoff:
            stale.append(spec.slug)
    models = Model.objects.global_rows()
    return {
        "interval_hours": settings.SYNC_INTERVAL_HOURS,
        "totals": {
            "providers": providers.count(),
            "active_providers": providers.filter(is_active=True).count(),
            "models": models.count(),
            "active_models": models.filter(is_active=True).count(),
        },
        "last_runs": runs,
        "stale_providers": stale,
        # Never synced here, and why (a missing key): scheduled syncs leave them out.
        "skipped_providers": skipped,
    }
