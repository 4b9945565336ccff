"""Django admin: sync runs with their counts, and the "sync now" action on providers."""

from __future__ import annotations

import pytest
from django.contrib import admin

from modelhub.models import Provider, SyncRun, User
from sync import pipeline
from sync.admin import sync_now
from sync.registry import get_spec
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def test_provider_admin_has_the_sync_action():
    model_admin = admin.site._registry[Provider]
    assert sync_now in model_admin.actions


def test_sync_runs_listed_with_counts(staff_client, serve):
    serve("vercel", load_response("vercel.json"))
    pipeline.sync_provider(spec=get_spec("vercel"))
    response = staff_client.get("/admin/modelhub/syncrun/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "vercel" in content and "12" in content
    run = SyncRun.objects.get()
    assert staff_client.get(f"/admin/modelhub/syncrun/{run.pk}/change/").status_code == 200


def test_sync_now_action_queues_provider_sync(
    staff_client, serve, settings, django_capture_on_commit_callbacks
):
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        serve("vercel", load_response("vercel.json"))
        pipeline.sync_provider(spec=get_spec("vercel"))
        provider = Provider.objects.get(slug="vercel")
        with django_capture_on_commit_callbacks(execute=True):
            response = staff_client.post(
                "/admin/modelhub/provider/",
                {"action": "sync_now", "_selected_action": [provider.pk]},
                follow=True,
            )
    finally:
        app.conf.task_always_eager = previous
    assert response.status_code == 200
    assert "Sync queued for vercel" in response.content.decode()
    assert SyncRun.objects.filter(trigger="admin:root").count() == 1
