"""Retention of the request log: raw metric rows older than METRIC_RETENTION_DAYS are
deleted in bounded batches by a nightly beat task; the daily rollups stay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from modelhub import services, tasks
from modelhub.models import MetricDaily, MetricDailyLatency, ModelMetric
from modelhub.selectors import dashboard_summary
from tests.support.builders import make_metric

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def aged(org, other_org):
    """For each of two organizations: 5 rows past 90 days, 1 at exactly 90 days, 3 newer."""
    rows: dict[str, list[int]] = {"expired": [], "kept": []}
    for owner in (org, other_org):
        for age in (400, 200, 120, 91, 90.0001):
            rows["expired"].append(
                make_metric(owner, created_at=NOW - timedelta(days=age), cost="0.5").pk
            )
        for age in (90, 30, 0):
            rows["kept"].append(make_metric(owner, created_at=NOW - timedelta(days=age)).pk)
    return rows


def test_rows_past_the_retention_are_deleted_every_organizations(settings, aged):
    settings.METRIC_RETENTION_DAYS = 90
    result = services.metrics_delete_expired(now=NOW)
    assert result.deleted == 10 and result.finished
    assert set(ModelMetric.objects.values_list("pk", flat=True)) == set(aged["kept"])


def test_deletion_goes_in_bounded_batches(settings, aged):
    settings.METRIC_RETENTION_BATCH_SIZE = 3
    result = services.metrics_delete_expired(days=90, now=NOW)
    assert (result.deleted, result.batches) == (10, 4)  # 3 + 3 + 3 + 1
    assert ModelMetric.objects.count() == len(aged["kept"])


def test_a_run_out_of_time_stops_after_its_batch_and_the_next_goes_on(aged):
    first = services.metrics_delete_expired(days=90, batch_size=4, max_seconds=0, now=NOW)
    assert (first.deleted, first.batches, first.finished) == (4, 1, False)
    # The oldest go first.
    oldest = ModelMetric.objects.order_by("created_at").first()
    assert oldest.created_at >= NOW - timedelta(days=200, seconds=1)
    second = services.metrics_delete_expired(days=90, batch_size=4, now=NOW)
    assert (second.deleted, second.finished) == (6, True)


def test_the_daily_rollups_are_kept(org, aged):
    usage_before = list(MetricDaily.objects.order_by("id").values())
    latency_before = list(MetricDailyLatency.objects.order_by("id").values())
    services.metrics_delete_expired(days=90, now=NOW)
    assert list(MetricDaily.objects.order_by("id").values()) == usage_before
    assert list(MetricDailyLatency.objects.order_by("id").values()) == latency_before
    old = dashboard_summary(
        organization=org, start=NOW - timedelta(days=401), end=NOW - timedelta(days=100)
    )
    assert old["totals"]["requests"] == 3 and old["totals"]["cost"] == 1.5


@pytest.mark.parametrize(("days", "batch_size"), [(0, 10), (90, 0), (-1, 10)])
def test_nonsense_settings_are_refused(days, batch_size, aged):
    with pytest.raises(ValueError, match="at least one day"):
        services.metrics_delete_expired(days=days, batch_size=batch_size, now=NOW)
    assert ModelMetric.objects.count() == 16


def test_the_task_deletes_with_the_settings(settings, celery_eager, aged):
    settings.METRIC_RETENTION_DAYS = 100
    settings.METRIC_RETENTION_BATCH_SIZE = 2
    assert tasks.delete_expired_metrics.name == "modelhub.delete_expired_metrics"
    assert tasks.delete_expired_metrics.soft_time_limit < tasks.delete_expired_metrics.time_limit
    assert tasks.delete_expired_metrics.soft_time_limit > tasks.RETENTION_MAX_SECONDS
    # 400, 200 and 120 days old, in both organizations.
    summary = tasks.delete_expired_metrics.delay().get()
    assert summary == {"deleted": 6, "batches": 3, "finished": True}
    assert ModelMetric.objects.count() == 10


@pytest.mark.django_db
def test_the_nightly_beat_entry_lives_in_the_database():
    """The migration creates the entry; beat's scheduler reads it (and admin edits)."""
    from django_celery_beat.models import PeriodicTask

    from config.scheduler import HeartbeatScheduler

    entry = PeriodicTask.objects.get(name="delete-expired-metrics")
    assert entry.task == "modelhub.delete_expired_metrics" and entry.enabled
    assert json.loads(entry.kwargs) == {}
    assert (entry.crontab.minute, entry.crontab.hour) == ("17", "3")
    assert entry.task in celery_app.tasks
    # What beat makes of it (its scheduler loads crontab entries only near their hour).
    beat_entry = HeartbeatScheduler.Entry(entry, app=celery_app)
    assert beat_entry.task == "modelhub.delete_expired_metrics"
    assert beat_entry.schedule.hour == {3} and beat_entry.schedule.minute == {17}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_on_redis_runs_the_retention(settings, org):
    from celery.contrib.testing.worker import start_worker

    settings.METRIC_RETENTION_BATCH_SIZE = 5
    assert not celery_app.conf.task_always_eager
    assert celery_app.conf.broker_url.startswith("redis://")
    ModelMetric.objects.bulk_create(
        ModelMetric(organization=org, requested_model="m", created_at=NOW - timedelta(days=d))
        for d in [365] * 12 + [1] * 3
    )
    with start_worker(
        celery_app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=30
    ):
        summary = tasks.delete_expired_metrics.delay().get(timeout=60)
    assert summary == {"deleted": 12, "batches": 3, "finished": True}
    assert ModelMetric.objects.count() == 3
