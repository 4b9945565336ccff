"""The request log: whose failure each request was, the failed attempts it fell back
from, the indexes its keyset pages and orderings read, the rollups' split of errors, and
the nightly beat entry of metric retention.

Rows written before this migration get their ``error_source`` from their status, error
type and attempts (the rule of ``ErrorSource.of``), and the daily rollups their split;
both are UPDATEs of the failed rows only.
"""

import json
from datetime import UTC

from django.db import migrations, models
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

RETENTION_NAME = "delete-expired-metrics"
UPSTREAM = Q(error_type__startswith="upstream_")


def attribute_errors(apps, schema_editor):
    ModelMetric = apps.get_model("modelhub", "ModelMetric")
    MetricDaily = apps.get_model("modelhub", "MetricDaily")
    failed = ModelMetric.objects.filter(status_code__gte=400)
    failed.filter(status_code__lt=500).exclude(UPSTREAM).update(error_source="client")
    failed.filter(status_code__gte=500, attempts=0).exclude(UPSTREAM).update(
        error_source="gateway"
    )
    failed.filter(UPSTREAM | Q(status_code__gte=500, attempts__gt=0)).update(
        error_source="provider"
    )
    # The rollups' new counters, per rollup row, from the failed requests behind it.
    grouped = (
        failed.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("organization_id", "day", "provider_id", "model_id", "client_key_id", "served_model")
        .annotate(
            client=Count("id", filter=Q(error_source="client")),
            provider=Count("id", filter=Q(error_source="provider")),
        )
        .order_by()
    )
    for row in grouped.iterator():
        MetricDaily.objects.filter(
            organization_id=row["organization_id"],
            day=row["day"],
            provider_pk=row["provider_id"] or 0,
            model_pk=row["model_id"] or 0,
            client_key_pk=row["client_key_id"] or 0,
            served_model=row["served_model"],
        ).update(client_errors=row["client"], provider_errors=row["provider"])


def create_retention_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=RETENTION_NAME).exists():
        return
    # Every night at 03:17 UTC: off the hour that other jobs crowd.
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute="17",
        hour="3",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.create(
        name=RETENTION_NAME,
        task="modelhub.delete_expired_metrics",
        crontab=schedule,
        kwargs=json.dumps({}),
        description="Delete metric rows older than METRIC_RETENTION_DAYS (rollups are kept).",
    )
    # The scheduler re-reads its entries when this marker changes (save() signals do not
    # run in migrations).
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_retention_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=RETENTION_NAME
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('modelhub', '0010_organization_budgets_and_webhooks'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='modelmetric',
            name='metrics_org_time',
        ),
        migrations.AddField(
            model_name='metricdaily',
            name='client_errors',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='metricdaily',
            name='provider_errors',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='modelmetric',
            name='error_source',
            field=models.CharField(blank=True, choices=[('client', 'Client'), ('provider', 'Provider'), ('gateway', 'Gateway')], help_text="Whose failure it was: client (the caller's input or limits), provider (upstream errors, timeouts, upstream 429) or gateway; empty for a success.", max_length=8),
        ),
        migrations.AddField(
            model_name='modelmetric',
            name='failed_attempts',
            field=models.JSONField(blank=True, default=list, help_text="Each failed upstream attempt, in order: provider, credential and model ids, error_type and the upstream's status (null when none came back)."),
        ),
        migrations.AddIndex(
            model_name='modelmetric',
            index=models.Index(fields=['organization', 'created_at', 'id'], name='metrics_org_time_id'),
        ),
        migrations.AddIndex(
            model_name='modelmetric',
            index=models.Index(fields=['organization', 'cost', 'id'], name='metrics_org_cost_id'),
        ),
        migrations.AddIndex(
            model_name='modelmetric',
            index=models.Index(fields=['organization', 'latency_ms', 'id'], name='metrics_org_latency_id'),
        ),
        migrations.AddIndex(
            model_name='modelmetric',
            index=models.Index(condition=models.Q(('success', False)), fields=['organization', 'created_at', 'id'], name='metrics_org_failed'),
        ),
        migrations.RunPython(attribute_errors, migrations.RunPython.noop),
        migrations.RunPython(create_retention_schedule, remove_retention_schedule),
    ]
