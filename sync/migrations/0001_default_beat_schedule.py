"""The default beat schedule: every provider's catalog sync every SYNC_INTERVAL_HOURS.

Created once; an entry an operator has since changed in the admin is left alone.
"""

import json

from django.conf import settings
from django.db import migrations
from django.utils import timezone

SYNC_ALL_NAME = "sync-all-providers"


def interval(hours: float) -> tuple[int, str]:
    """The interval as whole hours when it is one, else whole minutes (at least one)."""
    if float(hours).is_integer():
        return int(hours), "hours"
    return max(1, round(hours * 60)), "minutes"


def create_default_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=SYNC_ALL_NAME).exists():
        return
    every, period = interval(settings.SYNC_INTERVAL_HOURS)
    schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    PeriodicTask.objects.create(
        name=SYNC_ALL_NAME,
        task="sync.sync_all",
        interval=schedule,
        kwargs=json.dumps({"trigger": "beat"}),
        description="Sync every provider's model list into the catalog.",
    )
    # The scheduler re-reads its entries when this marker changes (save() signals do not
    # run in migrations).
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_default_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=SYNC_ALL_NAME
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(create_default_schedule, remove_default_schedule)]
