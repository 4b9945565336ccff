"""Celery tasks: eager behaviour, retries, the beat entry, and a real worker on Redis."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.exceptions import Retry
from django.conf import settings

from config.celery import app as celery_app
from modelhub.models import Model, SyncRun, SyncStatus
from sync import locks, tasks
from tests.support.recorded import load_response


@pytest.fixture
def eager():
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def test_task_names_and_limits():
    assert tasks.sync_provider.name == "sync.sync_provider"
    assert tasks.sync_all.name == "sync.sync_all"
    assert tasks.sync_provider.time_limit == settings.SYNC_TASK_TIME_LIMIT
    assert tasks.sync_provider.soft_time_limit < tasks.sync_provider.time_limit


@pytest.mark.django_db
def test_beat_schedule_lives_in_the_database():
    """The migration creates the sync entry; beat's scheduler reads it (and admin edits)."""
    from django_celery_beat.models import PeriodicTask

    assert celery_app.conf.beat_scheduler == "config.scheduler.HeartbeatScheduler"
    entry = PeriodicTask.objects.get(name="sync-all-providers")
    assert entry.task == "sync.sync_all" and entry.enabled
    assert json.loads(entry.kwargs) == {"trigger": "beat"}
    assert entry.interval.schedule.run_every.total_seconds() == 6 * 3600

    from config.scheduler import HeartbeatScheduler

    scheduler = HeartbeatScheduler(app=celery_app, lazy=True)
    assert scheduler.all_as_schedule()["sync-all-providers"].task == "sync.sync_all"
    # An operator's change in the admin is what beat runs next, without a restart.
    entry.interval.every = 2
    entry.interval.save()
    scheduler = HeartbeatScheduler(app=celery_app, lazy=True)
    schedule = scheduler.all_as_schedule()["sync-all-providers"].schedule
    assert schedule.run_every.total_seconds() == 2 * 3600


def test_default_schedule_interval_allows_fractions():
    migration = importlib.import_module("sync.migrations.0001_default_beat_schedule")
    assert migration.interval(6.0) == (6, "hours")
    assert migration.interval(0.5) == (30, "minutes")


@pytest.mark.django_db
def test_sync_provider_task_delegates(eager, serve):
    serve("openrouter", load_response("openrouter.json"))
    details = tasks.sync_provider.delay("openrouter").get()
    assert details["models_synced"] == 38 and details["status"] == "success"
    assert SyncRun.objects.get().trigger == "celery"
    assert tasks.sync_provider.delay("no-such-provider").get()["status"] == "unknown"


@pytest.mark.django_db
def test_transient_errors_are_recorded_and_retried(eager, serve):
    serve("openrouter", {"error": "busy"}, status=503)
    with pytest.raises(Retry):  # eager mode surfaces the scheduled retry
        tasks.sync_provider.delay("openrouter").get()
    run = SyncRun.objects.get(provider_slug="openrouter")
    assert run.status == SyncStatus.FAILED and run.error == "HTTP 503 from the provider"


@pytest.mark.django_db
def test_auth_errors_are_not_retried(eager, serve, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-123456789")
    serve("openai", {"error": "bad key"}, status=401)
    assert tasks.sync_provider.delay("openai").get()["status"] == "failed"
    assert SyncRun.objects.count() == 1


def serve_public_lists(serve) -> None:
    """Every provider whose list needs no key answers with its fixture."""
    serve("openrouter", load_response("openrouter.json"))
    serve("vercel", load_response("vercel.json"))
    for slug, fixture in [
        ("deepinfra", "deepinfra.json"),
        ("featherless", "featherless.json"),
        ("huggingface", "huggingface-router.json"),
        ("helicone", "helicone.json"),
        ("aihubmix", "aihubmix.json"),
        ("nearai", "nearai.json"),
        ("chutes", "chutes.json"),
    ]:
        serve(slug, load_response(fixture))
    fal = load_response("fal.json")
    serve("fal", {**fal, "has_more": False})


@pytest.mark.django_db
def test_sync_all_fans_out_to_syncable_providers(eager, serve):
    serve_public_lists(serve)
    summary = tasks.sync_all.delay().get()
    slugs = summary["queued"]
    assert "openai" not in slugs and {"openrouter", "vercel"} <= set(slugs)
    # Providers left out for a missing key are named in the summary, with the reason.
    assert summary["skipped"]["openai"] == "OPENAI_API_KEY is not set"
    assert not set(summary["skipped"]) & set(slugs)
    assert set(SyncRun.objects.values_list("provider_slug", flat=True)) == set(slugs)
    assert Model.objects.filter(provider__slug="openrouter").count() == 38


@pytest.mark.django_db
def test_sync_all_runs_never_overlap(eager, serve):
    """A second run while one holds the lock returns at once; the lock is freed after."""
    serve_public_lists(serve)
    token = locks.acquire_sync_lock()
    assert token is not None
    try:
        summary = tasks.sync_all.delay().get()
        assert summary == {
            "status": "skipped",
            "reason": "another catalog sync is still running",
        }
        assert not SyncRun.objects.exists()
    finally:
        locks.release_sync_lock(token)
    # The run's chord callback released its own lock: a later run is not skipped.
    assert tasks.sync_all.delay().get()["status"] == "queued"
    later = locks.acquire_sync_lock()
    assert later is not None
    locks.release_sync_lock(later)


@pytest.mark.django_db
def test_admin_action_queues_after_commit(eager, serve, django_capture_on_commit_callbacks):
    serve("vercel", load_response("vercel.json"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.enqueue_provider_syncs(slugs=["vercel"], trigger="admin:test")
    assert not SyncRun.objects.exists()  # nothing runs before the commit
    for callback in callbacks:
        callback()
    assert SyncRun.objects.get().trigger == "admin:test"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_real_worker_on_redis_broker(serve):
    """A real Celery worker consumes sync tasks from the Redis broker and writes the DB."""
    from celery.contrib.testing.worker import start_worker

    assert not celery_app.conf.task_always_eager
    assert celery_app.conf.broker_url.startswith("redis://")
    serve("openrouter", load_response("openrouter.json"))
    serve("vercel", load_response("vercel.json"))
    with start_worker(
        celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
    ):
        details = tasks.sync_provider.delay("openrouter").get(timeout=60)
        assert details["models_synced"] == 38
        result = tasks.sync_all.delay()
        slugs = result.get(timeout=60)["queued"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = SyncRun.objects.filter(trigger="celery").exclude(status=SyncStatus.RUNNING)
            if set(done.values_list("provider_slug", flat=True)) >= set(slugs):
                break
            time.sleep(0.2)
    assert Model.objects.filter(provider__slug="openrouter").count() == 38
    assert Model.objects.filter(provider__slug="vercel").count() == 12
    statuses = dict(
        SyncRun.objects.filter(provider_slug__in=["openrouter", "vercel"])
        .order_by("id")
        .values_list("provider_slug", "status")
    )
    assert statuses == {"openrouter": SyncStatus.SUCCESS, "vercel": SyncStatus.SUCCESS}


def test_beat_process_heartbeat_is_its_health_check(tmp_path):
    """A real ``celery beat`` on the database scheduler: the health check is red before it
    ticks and green after, and beat writes nothing into the working directory."""
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DJANGO_ENV_FILE": str(tmp_path / "none"),
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'beat.sqlite3'}",
        "CELERY_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(root),
    }
    health = [sys.executable, "-m", "config.beat"]

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(health, cwd=tmp_path, env=env, capture_output=True, text=True)

    migrate = subprocess.run(
        [sys.executable, str(root / "manage.py"), "migrate", "-v", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert check().returncode == 1
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "state" / "beat-heartbeat").exists():
            assert beat.poll() is None, beat.stderr.read().decode()
            assert time.monotonic() < deadline, "beat never ticked"
            time.sleep(0.2)
        result = check()
        assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout
    finally:
        beat.terminate()
        beat.wait(timeout=30)
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {"beat.sqlite3", "state"} | {
        n for n in written if n.startswith("beat.sqlite3")
    }
    assert not list(root.glob("celerybeat-schedule*"))
