"""Admin sync API under /admin/model-sync/: bearer key, shapes, status codes."""

from __future__ import annotations

import copy

import pytest
import responses

from modelhub.models import Model, SyncRun
from sync import locks, pipeline
from sync.registry import REGISTRY, get_spec
from tests.support.api import ADMIN_KEY
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db

AUTH = {"HTTP_AUTHORIZATION": f"Bearer {ADMIN_KEY}"}
ENDPOINTS = [
    ("get", "/admin/model-sync/providers"),
    ("post", "/admin/model-sync/provider/openrouter"),
    ("post", "/admin/model-sync/all"),
    ("get", "/admin/model-sync/status"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_disabled_without_admin_api_key(client, settings, method, url):
    settings.ADMIN_API_KEY = ""
    response = getattr(client, method)(url, **AUTH)
    assert response.status_code == 503
    assert "ADMIN_API_KEY" in response.json()["detail"]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {ADMIN_KEY}", ADMIN_KEY])
def test_missing_or_wrong_key_is_401_and_changes_nothing(
    client, admin_key, http, method, url, header
):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = getattr(client, method)(url, **extra)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or missing admin API key."}
    assert not SyncRun.objects.exists() and len(http.calls) == 0


def test_sync_one_provider(client, admin_key, serve):
    serve("openrouter", load_response("openrouter.json"))
    response = client.post("/admin/model-sync/provider/openrouter?dry_run=false", **AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["message"] == (
        "Synced 38 models from openrouter. Fetched: 38, Transformed: 38, Skipped: 0"
    )
    details = body["details"]
    assert details["provider"] == "openrouter"
    assert details["provider_id"] == Model.objects.first().provider_id
    assert (details["models_fetched"], details["models_transformed"], details["models_synced"]) == (
        38,
        38,
        38,
    )
    assert details["models_created"] == 38 and details["dry_run"] is False


def test_sync_one_provider_dry_run(client, admin_key, serve):
    serve("openrouter", load_response("openrouter.json"))
    response = client.post("/admin/model-sync/provider/openrouter?dry_run=true", **AUTH)
    assert response.status_code == 200
    assert response.json()["details"]["dry_run"] is True
    assert not Model.objects.exists()


def test_sync_one_unknown_bad_param_skipped_failed(client, admin_key, serve):
    assert client.post("/admin/model-sync/provider/nope", **AUTH).status_code == 404
    assert (
        client.post("/admin/model-sync/provider/openrouter?dry_run=maybe", **AUTH).status_code
        == 400
    )
    assert client.get("/admin/model-sync/provider/openrouter", **AUTH).status_code == 405
    skipped = client.post("/admin/model-sync/provider/openai", **AUTH)
    assert skipped.status_code == 409
    assert skipped.json()["success"] is False
    assert "OPENAI_API_KEY is not set" in skipped.json()["message"]
    serve("openrouter", "<html>down</html>", status=502)
    failed = client.post("/admin/model-sync/provider/openrouter", **AUTH)
    assert failed.status_code == 502
    assert failed.json()["success"] is False
    assert failed.json()["details"]["error"] == "HTTP 502 from the provider"


def test_sync_all_waits_for_a_running_sync(client, admin_key, http):
    token = locks.acquire_sync_lock()
    try:
        response = client.post("/admin/model-sync/all", **AUTH)
    finally:
        locks.release_sync_lock(token)
    assert response.status_code == 409
    assert "still running" in response.json()["message"]
    assert not SyncRun.objects.exists() and len(http.calls) == 0


def test_sync_all_reports_every_provider(client, admin_key, serve):
    for slug, fixture in [
        ("openrouter", "openrouter.json"),
        ("deepinfra", "deepinfra.json"),
        ("vercel", "vercel.json"),
        ("featherless", "featherless.json"),
        ("helicone", "helicone.json"),
        ("aihubmix", "aihubmix.json"),
        ("chutes", "chutes.json"),
        ("nearai", "nearai.json"),
        ("huggingface", "huggingface-router.json"),
    ]:
        serve(slug, load_response(fixture))
    fal = load_response("fal.json")
    serve("fal", {**fal, "has_more": False})
    response = client.post("/admin/model-sync/all", **AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    by_slug = {d["provider"]: d for d in body["details"]}
    assert set(by_slug) == set(REGISTRY)
    assert by_slug["openrouter"]["models_synced"] == 38
    assert by_slug["openai"]["status"] == "skipped"
    assert by_slug["ollama"]["error"] == "OLLAMA_BASE_URL is not set"


def test_providers_and_status(client, admin_key, serve, http, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk-123456")
    serve("openrouter", load_response("openrouter.json"))
    pipeline.sync_provider(spec=get_spec("openrouter"))
    changed = copy.deepcopy(load_response("openrouter.json"))
    changed["data"] = changed["data"][:30]
    http.replace(responses.GET, get_spec("openrouter").list_url, json=changed)
    pipeline.sync_provider(spec=get_spec("openrouter"), force=True)

    providers = client.get("/admin/model-sync/providers", **AUTH).json()["providers"]
    by_slug = {p["slug"]: p for p in providers}
    assert set(by_slug) == set(REGISTRY)
    openrouter = by_slug["openrouter"]
    assert openrouter["model_count"] == 38 and openrouter["active_model_count"] == 30
    assert openrouter["key_configured"] is False and openrouter["syncable"] is True
    assert openrouter["last_run"]["models_deactivated"] == 8
    assert openrouter["last_synced_at"] is not None
    assert by_slug["groq"]["key_configured"] is True
    assert by_slug["openai"]["skip_reason"] == "OPENAI_API_KEY is not set"

    status = client.get("/admin/model-sync/status", **AUTH).json()
    assert status["totals"] == {
        "providers": 1,
        "active_providers": 1,
        "models": 38,
        "active_models": 30,
    }
    assert status["last_runs"]["openrouter"]["status"] == "success"
    assert status["interval_hours"] == 6
    assert "openrouter" not in status["stale_providers"]
    assert "groq" in status["stale_providers"]  # has a key, never synced
    assert "openai" not in status["stale_providers"]  # cannot run here
    assert status["skipped_providers"]["openai"] == "OPENAI_API_KEY is not set"
    assert "groq" not in status["skipped_providers"]
