"""Stored responses of the gateway's Responses API: retention and its beat entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from modelhub.models import StoredResponse
from modelhub.selectors import stored_response_get
from modelhub.services import stored_response_create
from modelhub.tasks import purge_expired_responses


def stored(organization, response_id: str, age_days: float) -> StoredResponse:
    row = stored_response_create(
        organization=organization,
        response_id=response_id,
        model="alpha/llama-3.1-8b",
        response={"id": response_id, "output": []},
        input_items=[],
        history=[],
    )
    StoredResponse.objects.for_org(organization).filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=age_days)
    )
    return row


def remaining() -> set[str]:
    rows = StoredResponse.objects.across_tenants(reason="a test sees every organization")
    return set(rows.values_list("response_id", flat=True))


def test_the_retention_task_deletes_only_expired_responses(org, other_org, settings, celery_eager):
    settings.RESPONSES_RETENTION_DAYS = 30
    stored(org, "resp_fresh", 29)
    stored(org, "resp_old", 31)
    stored(other_org, "resp_other_fresh", 1)
    stored(other_org, "resp_other_old", 400)

    assert purge_expired_responses.delay().get() == 2
    assert remaining() == {"resp_fresh", "resp_other_fresh"}
    # Idempotent: a second run finds nothing more.
    assert purge_expired_responses.delay().get() == 0


def test_a_response_past_retention_reads_as_gone_before_the_purge(org, settings):
    settings.RESPONSES_RETENTION_DAYS = 7
    stored(org, "resp_recent", 6)
    stored(org, "resp_expired", 8)
    assert stored_response_get(organization=org, response_id="resp_recent") is not None
    assert stored_response_get(organization=org, response_id="resp_expired") is None


def test_another_organizations_response_reads_as_missing(org, other_org):
    stored(org, "resp_mine", 0)
    assert stored_response_get(organization=other_org, response_id="resp_mine") is None


@pytest.mark.django_db
def test_the_purge_runs_daily_from_the_beat_schedule():
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(name="purge-expired-responses")
    assert entry.task == "modelhub.purge_expired_responses" and entry.enabled
    assert entry.interval.schedule.run_every == timedelta(days=1)
    assert entry.task in celery_app.tasks
