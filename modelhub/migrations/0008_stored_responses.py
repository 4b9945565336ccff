"""Stored responses of the gateway's Responses API, and the daily beat entry that
removes those past RESPONSES_RETENTION_DAYS (created once; an entry an operator has
since changed in the admin is left alone)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.utils import timezone

PURGE_NAME = "purge-expired-responses"


def create_purge_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=PURGE_NAME).exists():
        return
    schedule, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.create(
        name=PURGE_NAME,
        task="modelhub.purge_expired_responses",
        interval=schedule,
        description="Remove stored responses older than RESPONSES_RETENTION_DAYS.",
    )
    # The scheduler re-reads its entries when this marker changes.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_purge_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=PURGE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('modelhub', '0007_metric_foreign_key_actions'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.CreateModel(
            name='StoredResponse',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('response_id', models.CharField(help_text='The response\'s id, "resp_" and random hex.', max_length=64, unique=True)),
                ('model', models.CharField(help_text='The model the client asked for.', max_length=300)),
                ('response', models.JSONField(help_text='The Response object as it was returned.')),
                ('input_items', models.JSONField(default=list, help_text="The request's own input, as Responses API items.")),
                ('history', models.JSONField(default=list, help_text='The items of the earlier turns it continued (previous_response_id).')),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now, help_text='When the response was created.')),
                ('client_key', models.ForeignKey(blank=True, help_text='The client key that created it (its id).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='modelhub.clientkey')),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='modelhub.organization')),
            ],
            options={
                'db_table': 'stored_responses',
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.RunPython(create_purge_schedule, remove_purge_schedule),
    ]
