"""The pipeline end to end against recorded responses: upsert, re-sync, faults, paging."""

from __future__ import annotations

import copy
import json
import logging
from decimal import Decimal as D
from pathlib import Path

import pytest
import requests
import responses
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelhub.cache import catalog_version
from modelhub.invalidation import tenant_changed
from modelhub.models import Model, Provider, SyncRun, SyncStatus
from sync import pipeline, policies, snapshots
from sync.registry import get_spec
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db

OPENROUTER = "openrouter"


def sync(slug: str, **kwargs) -> pipeline.SyncResult:
    return pipeline.sync_provider(spec=get_spec(slug), **kwargs)


def catalog_rows(slug: str) -> list[tuple]:
    return list(
        Model.objects.filter(provider__slug=slug)
        .order_by("provider_model_id")
        .values_list("provider_model_id", "pricing_prompt", "is_active", "sync_hash", "updated_at")
    )


def openrouter_page(models: list[dict]) -> dict:
    return {"data": models, "total_count": len(models), "links": {"next": None}}


def synthetic_openrouter(count: int) -> dict:
    template = load_response("openrouter.json")["data"][3]
    models = []
    for n in range(count):
        model = copy.deepcopy(template)
        model["id"] = f"synthetic/model-{n}"
        model["canonical_slug"] = f"synthetic/model-{n}"
        model["pricing"] = {"prompt": f"0.000000{n % 9 + 1}", "completion": "0.000001"}
        models.append(model)
    return openrouter_page(models)


# --- a first sync -------------------------------------------------------------------------


def test_first_sync_creates_provider_models_and_run(serve, django_capture_on_commit_callbacks):
    serve(OPENROUTER, load_response("openrouter.json"))
    version = catalog_version()

    with django_capture_on_commit_callbacks(execute=True):
        result = sync(OPENROUTER)

    assert result.status == SyncStatus.SUCCESS
    assert (result.fetched, result.transformed, result.created, result.skipped) == (38, 38, 38, 0)
    provider = Provider.objects.get(slug=OPENROUTER, organization__isnull=True)
    assert provider.base_url == "https://openrouter.ai/api/v1"
    assert provider.api_key_env_var == "OPENROUTER_API_KEY"
    assert provider.last_synced_at is not None
    gpt4o = Model.objects.get(provider=provider, provider_model_id="openai/gpt-4o")
    assert gpt4o.pricing_prompt == D("0.0000025")
    assert gpt4o.pricing_completion == D("0.00001")
    assert gpt4o.context_length == 128000
    assert gpt4o.modality == "text+image+file->text"
    assert gpt4o.input_modalities == ["text", "image", "file"]
    assert gpt4o.supports_vision and gpt4o.is_active
    assert gpt4o.raw["id"] == "openai/gpt-4o"
    assert gpt4o.upstream_created_at is not None and gpt4o.created_at is not None
    auto = Model.objects.get(provider=provider, provider_model_id="openrouter/auto")
    assert auto.pricing_prompt is None
    run = SyncRun.objects.get(pk=result.sync_run_id)
    assert run.status == SyncStatus.SUCCESS and run.provider == provider
    assert (run.models_fetched, run.models_created, run.dry_run) == (38, 38, False)
    assert run.finished_at and run.duration_ms is not None
    assert catalog_version() > version


def test_a_sync_that_writes_tells_the_gateways(serve, django_capture_on_commit_callbacks):
    """Gateways drop the plans and model lists built from the catalog rows it changed."""
    heard = []

    def listen(sender, organization_id=None, client_key_hash=None, **kwargs):
        heard.append((organization_id, client_key_hash))

    serve(OPENROUTER, load_response("openrouter.json"))
    tenant_changed.connect(listen, weak=False, dispatch_uid="test-sync-listen")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync(OPENROUTER)
    finally:
        tenant_changed.disconnect(dispatch_uid="test-sync-listen")
    assert heard == [(None, None)]


def test_unchanged_resync_writes_no_model_rows(serve, django_capture_on_commit_callbacks):
    serve(OPENROUTER, load_response("openrouter.json"))
    sync(OPENROUTER)
    before = catalog_rows(OPENROUTER)
    version = catalog_version()

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        result = sync(OPENROUTER)
    assert callbacks == []

    assert (result.created, result.updated, result.deactivated, result.unchanged) == (0, 0, 0, 38)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and '"models"' in q["sql"].split("SET")[0].split("SELECT")[0]
    ]
    assert writes == []
    assert catalog_rows(OPENROUTER) == before
    assert catalog_version() == version


def test_changed_vanished_and_returning_models(serve, http):
    body = load_response("openrouter.json")
    serve(OPENROUTER, body)
    sync(OPENROUTER)

    changed = copy.deepcopy(body)
    gpt4o = next(m for m in changed["data"] if m["id"] == "openai/gpt-4o")
    gpt4o["pricing"]["prompt"] = "0.000003"
    changed["data"] = [m for m in changed["data"] if m["id"] != "openai/gpt-4o-mini"]
    http.replace(responses.GET, get_spec(OPENROUTER).list_url, json=changed)
    result = sync(OPENROUTER)

    assert (result.created, result.updated, result.deactivated) == (0, 1, 1)
    assert Model.objects.get(provider_model_id="openai/gpt-4o").pricing_prompt == D("0.000003")
    mini = Model.objects.get(provider_model_id="openai/gpt-4o-mini")
    assert mini.is_active is False  # kept, not deleted
    assert Model.objects.filter(provider__slug=OPENROUTER).count() == 38

    http.replace(responses.GET, get_spec(OPENROUTER).list_url, json=body)
    result = sync(OPENROUTER)
    assert (result.created, result.updated, result.deactivated) == (0, 2, 0)
    mini.refresh_from_db()
    assert mini.is_active is True


def test_dry_run_writes_no_catalog_row(serve):
    serve(OPENROUTER, load_response("openrouter.json"))
    result = sync(OPENROUTER, dry_run=True)
    assert result.ok and result.dry_run and result.created == 38
    assert "would sync 38 models" in result.message
    assert not Provider.objects.exists() and not Model.objects.exists()
    run = SyncRun.objects.get()
    assert run.dry_run and run.models_created == 38

    sync(OPENROUTER)
    before = catalog_rows(OPENROUTER)
    result = sync(OPENROUTER, dry_run=True)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 38)
    assert catalog_rows(OPENROUTER) == before


def test_a_malformed_record_is_skipped_and_logged_the_rest_lands(serve, caplog):
    body = load_response("openrouter.json")
    body["data"].insert(5, {"name": "no id at all"})
    body["data"].insert(7, "not an object")
    body["data"].append(copy.deepcopy(body["data"][3]))  # a duplicate id
    serve(OPENROUTER, body)
    with caplog.at_level(logging.WARNING, logger="sync"):
        result = sync(OPENROUTER)
    assert result.status == SyncStatus.PARTIAL and result.ok
    assert result.transformed == 38 and result.skipped == 3
    assert result.skipped_ids == ["#5", "#7", body["data"][3]["id"]]
    assert Model.objects.count() == 38
    assert "#5" in caplog.text and body["data"][3]["id"] in caplog.text


# --- faults: the provider's rows stay exactly as they were ---------------------------------


FAULTS = {
    "timeout": {"body": requests.exceptions.ReadTimeout("read timed out")},
    "connection": {"body": requests.exceptions.ConnectionError("refused")},
    "5xx": {"json": {"error": "upstream"}, "status": 503},
    "401": {"json": {"error": "invalid key"}, "status": 401},
    "html": {
        "body": "<html><body>Maintenance</body></html>",
        "status": 200,
        "content_type": "text/html",
    },
    "truncated": {
        "body": '{"data": [{"id": "openai/gpt-4o", "pricing": {"prompt": "0.0',
        "status": 200,
        "content_type": "application/json",
    },
    "empty": {"json": {"data": []}, "status": 200},
    "shrunk": {
        "json": openrouter_page(load_response("openrouter.json")["data"][:5]),
        "status": 200,
    },
    "wrong-shape": {"json": {"error": {"message": "rate limited"}}, "status": 200},
    "all-garbage": {"json": {"data": [{"name": "x"}, {"name": "y"}]}, "status": 200},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failing_fetch_leaves_rows_untouched_and_others_sync(fault, serve, http):
    serve(OPENROUTER, load_response("openrouter.json"))
    serve("vercel", load_response("vercel.json"))
    pipeline.sync_providers(slugs=[OPENROUTER, "vercel"])
    before = catalog_rows(OPENROUTER)
    assert len(before) == 38

    http.replace(responses.GET, get_spec(OPENROUTER).list_url, **FAULTS[fault])
    vercel = copy.deepcopy(load_response("vercel.json"))
    vercel["data"][0]["pricing"]["input"] = "0.0000005"
    http.replace(responses.GET, get_spec("vercel").list_url, json=vercel)
    failed, synced = pipeline.sync_providers(slugs=[OPENROUTER, "vercel"])

    assert failed.status == SyncStatus.FAILED and failed.error
    assert catalog_rows(OPENROUTER) == before
    assert SyncRun.objects.filter(provider_slug=OPENROUTER).first().status == SyncStatus.FAILED
    assert synced.status == SyncStatus.SUCCESS and synced.updated == 1
    assert failed.transient is (fault in {"timeout", "connection", "5xx"})


def test_force_accepts_a_shrunk_list(serve, http):
    serve(OPENROUTER, load_response("openrouter.json"))
    sync(OPENROUTER)
    http.replace(
        responses.GET,
        get_spec(OPENROUTER).list_url,
        json=openrouter_page(load_response("openrouter.json")["data"][:5]),
    )
    result = sync(OPENROUTER, force=True)
    assert result.ok and result.deactivated == 33
    assert Model.objects.filter(is_active=True).count() == 5


# --- keys -------------------------------------------------------------------------------


def test_keyless_provider_is_skipped_with_reason_without_any_request(http):
    result = sync("openai")
    assert result.status == SyncStatus.SKIPPED
    assert result.error == "OPENAI_API_KEY is not set"
    assert len(http.calls) == 0
    assert SyncRun.objects.get().status == SyncStatus.SKIPPED


def test_public_list_is_fetched_without_a_key(serve, http):
    serve("vercel", load_response("vercel.json"))
    assert sync("vercel").ok
    assert "Authorization" not in http.calls[0].request.headers


def test_key_is_sent_but_never_logged_or_reported(serve, http, monkeypatch, caplog):
    secret = "sk-test-SECRET-value-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    serve("openai", f"invalid api key {secret}", status=401)
    with caplog.at_level(logging.DEBUG):
        result = sync("openai")
    assert http.calls[0].request.headers["Authorization"] == f"Bearer {secret}"
    assert result.status == SyncStatus.FAILED
    assert secret not in result.error and secret not in result.message
    assert secret not in caplog.text
    assert secret not in SyncRun.objects.get().error


def test_provider_specific_auth_headers(serve, http, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ant-key-123")
    monkeypatch.setenv("GEMINI_API_KEY", "gem-key-123")
    serve("anthropic", load_response("anthropic.json"))
    serve("gemini", load_response("gemini.json"))
    assert sync("anthropic").ok and sync("gemini").ok
    anthropic, gemini = (call.request for call in http.calls)
    assert anthropic.headers["x-api-key"] == "ant-key-123"
    assert anthropic.headers["anthropic-version"] == "2023-06-01"
    assert gemini.headers["x-goog-api-key"] == "gem-key-123"
    assert "key=" not in gemini.url


def test_ollama_uses_ollama_base_url(serve, monkeypatch):
    assert sync("ollama").error == "OLLAMA_BASE_URL is not set"
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:11434/")
    serve("ollama", load_response("ollama.json"), url="http://127.0.0.1:11434/api/tags")
    result = sync("ollama")
    assert result.ok and result.created == 4
    assert Provider.objects.get(slug="ollama").base_url == "http://127.0.0.1:11434/v1"


# --- pagination -------------------------------------------------------------------------


def test_anthropic_after_id_pagination(serve, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k-123456")
    body = load_response("anthropic.json")
    first = {**body, "data": body["data"][:4], "has_more": True, "last_id": body["data"][3]["id"]}
    second = {**body, "data": body["data"][4:], "has_more": False}
    url = get_spec("anthropic").list_url
    serve("anthropic", first)
    serve("anthropic", second, url=f"{url}&after_id={body['data'][3]['id']}")
    result = sync("anthropic")
    assert result.ok and result.fetched == 9


def test_gemini_fireworks_fal_token_pagination(serve, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "g-123456")
    monkeypatch.setenv("FIREWORKS_API_KEY", "f-123456")
    gemini = load_response("gemini.json")
    url = get_spec("gemini").list_url
    serve("gemini", {"models": gemini["models"][:5], "nextPageToken": "p2"})
    serve("gemini", {"models": gemini["models"][5:]}, url=f"{url}&pageToken=p2")
    assert sync("gemini").fetched == 9

    fireworks = load_response("fireworks-accounts.json")  # nextPageToken + totalSize
    url = get_spec("fireworks").list_url
    serve("fireworks", fireworks)
    token = fireworks["nextPageToken"]
    serve(
        "fireworks",
        {"models": load_response("fireworks.json")["data"][:3], "nextPageToken": ""},
        url=f"{url}&pageToken={token}",
    )
    result = sync("fireworks")
    assert result.ok and result.fetched == 7

    fal = load_response("fal.json")  # has_more + next_cursor
    url = get_spec("fal").list_url
    serve("fal", {**fal, "models": fal["models"][:5]})
    serve(
        "fal",
        {**fal, "models": fal["models"][5:], "has_more": False, "next_cursor": None},
        url=f"{url}&cursor={fal['next_cursor']}",
    )
    assert sync("fal").fetched == 8


def test_openrouter_links_next_and_nearai_offset(serve):
    body = load_response("openrouter.json")
    serve(
        OPENROUTER,
        {
            **body,
            "data": body["data"][:20],
            "links": {"next": "/api/v1/models?output_modalities=all&page=2"},
        },
    )
    serve(
        OPENROUTER,
        {**body, "data": body["data"][20:], "links": {"next": None}},
        url="https://openrouter.ai/api/v1/models?output_modalities=all&page=2",
    )
    assert sync(OPENROUTER).created == 38

    near = load_response("nearai.json")
    url = get_spec("nearai").list_url
    serve("nearai", {**near, "models": near["models"][:2], "limit": 2, "offset": 0})
    serve(
        "nearai",
        {**near, "models": near["models"][2:], "limit": 2, "offset": 2},
        url=url.replace("limit=100", "limit=100&offset=2"),
    )
    assert sync("nearai").fetched == 5


def test_page_bound_and_loops_fail_without_writing(serve, settings):
    settings.SYNC_MAX_PAGES = 3
    body = load_response("openrouter.json")
    for page in range(1, 5):
        url = f"https://openrouter.ai/api/v1/models?output_modalities=all&page={page}"
        serve(
            OPENROUTER,
            {**body, "links": {"next": f"/api/v1/models?output_modalities=all&page={page + 1}"}},
            url=get_spec(OPENROUTER).list_url if page == 1 else url,
        )
    result = sync(OPENROUTER)
    assert result.status == SyncStatus.FAILED and "more than 3 pages" in result.error
    assert not Model.objects.exists()


def test_fal_prices_are_fetched_with_a_key(serve, http, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "fal-key-123456")
    fal = load_response("fal.json")
    serve("fal", {**fal, "has_more": False})
    pricing = load_response("fal-pricing.json")
    http.add(responses.GET, "https://api.fal.ai/v1/models/pricing", json=pricing)
    result = sync("fal")
    assert result.ok
    assert http.calls[0].request.headers["Authorization"] == "Key fal-key-123456"
    assert Model.objects.get(provider_model_id="fal-ai/flux/dev").pricing_image == D("0.025")
    assert Model.objects.get(provider_model_id="fal-ai/flux/schnell").raw["pricing"]["unit"] == (
        "megapixels"
    )


# --- query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [10, 400])
def test_query_count_does_not_grow_with_models(count, serve, http, django_assert_max_num_queries):
    body = synthetic_openrouter(count)
    serve(OPENROUTER, body)
    # Pinned: run row, savepoint, provider (select + insert), models insert, release, run.
    with django_assert_max_num_queries(7):
        assert sync(OPENROUTER).created == count
    with django_assert_max_num_queries(7):
        assert sync(OPENROUTER).unchanged == count
    changed = copy.deepcopy(body)
    for model in changed["data"][::10]:
        model["pricing"]["prompt"] = "0.00000042"
    changed["data"] = changed["data"][: count - 2]
    http.replace(responses.GET, get_spec(OPENROUTER).list_url, json=changed)
    with django_assert_max_num_queries(9):
        result = sync(OPENROUTER)
    assert result.updated == len(changed["data"][::10]) and result.deactivated == 2


# --- provider policies and snapshots ---------------------------------------------------------


def test_openrouter_provider_list_fills_policy_fields(serve, http, monkeypatch):
    serve("vercel", load_response("vercel.json"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1234567")
    serve("openai", load_response("openai.json"))
    sync("openai")
    sync("vercel")
    assert policies.sync_provider_policies() == 0  # no OpenRouter key: skipped
    monkeypatch.setenv("OPENROUTER_API_KEY", "or-1234567")
    payload = load_response("openrouter-providers.json")
    payload["data"].append({"slug": "mistral", "data_policy": {"training": True}})
    http.add(responses.GET, policies.OPENROUTER_PROVIDERS_URL, json=payload)
    assert policies.sync_provider_policies() == 1
    openai = Provider.objects.get(slug="openai")
    assert openai.privacy_policy_url == "https://openai.com/policies/privacy-policy/"
    assert openai.terms_of_service_url == "https://openai.com/policies/row-terms-of-use/"
    assert openai.status_page_url == "https://status.openai.com/"
    assert Provider.objects.get(slug="vercel").privacy_policy_url == ""  # not listed
    assert policies.provider_policies(payload)["mistral"]["may_train_on_data"] is True


SNAPSHOT = Path(snapshots.__file__).resolve().parent / "snapshots" / "catalog.json.gz"


def test_shipped_snapshot_loads_offline_and_is_up_to_date(http, tmp_path):
    results = snapshots.load_snapshot(path=SNAPSHOT)
    assert all(r.ok for r in results) and len(results) >= 24
    assert len(http.calls) == 0
    assert Model.objects.count() == sum(r.created for r in results) > 300
    assert Model.objects.get(
        provider__slug="openrouter", provider_model_id="openai/gpt-4o"
    ).pricing_prompt == D("0.0000025")
    again = snapshots.load_snapshot(path=SNAPSHOT)
    assert sum(r.rows_written for r in again) == 0

    rebuilt = tmp_path / "catalog.json.gz"
    snapshots.build_snapshot(
        fixtures_dir=Path(__file__).parent.parent / "fixtures" / "providers", output=rebuilt
    )
    assert rebuilt.read_bytes() == SNAPSHOT.read_bytes()


def test_snapshot_json_and_bad_file(tmp_path):
    path = tmp_path / "c.json"
    snapshots.build_snapshot(
        fixtures_dir=Path(__file__).parent.parent / "fixtures" / "providers", output=path
    )
    assert json.loads(path.read_text())["format"] == snapshots.SNAPSHOT_FORMAT
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError):
        snapshots.load_snapshot(path=bad)


def test_snapshot_never_rolls_back_a_live_sync(serve):
    serve(OPENROUTER, synthetic_openrouter(120))
    sync(OPENROUTER)
    results = {r.provider: r for r in snapshots.load_snapshot(path=SNAPSHOT)}
    assert results[OPENROUTER].status == SyncStatus.SKIPPED
    assert "live API" in results[OPENROUTER].error
    assert results["vercel"].created == 12
    assert Model.objects.filter(provider__slug=OPENROUTER, is_active=True).count() == 120


def test_ollama_provider_needs_no_key_to_call(serve, monkeypatch):
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:11434")
    serve("ollama", load_response("ollama-openai.json"), url="http://127.0.0.1:11434/api/tags")
    assert sync("ollama").created == 4
    assert Provider.objects.get(slug="ollama").requires_api_key is False


# --- the size cap -----------------------------------------------------------------------


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_a_list_over_the_cap_is_refused_and_rows_stay(serve, http, settings, force):
    serve(OPENROUTER, load_response("openrouter.json"))
    sync(OPENROUTER)
    before = catalog_rows(OPENROUTER)
    settings.SYNC_MAX_RECORDS = 50
    http.replace(responses.GET, get_spec(OPENROUTER).list_url, json=synthetic_openrouter(51))

    result = sync(OPENROUTER, force=force)

    assert result.status == SyncStatus.FAILED
    assert "51 records, more than SYNC_MAX_RECORDS (50)" in result.error
    run = SyncRun.objects.filter(provider_slug=OPENROUTER).order_by("-id").first()
    assert run.status == SyncStatus.FAILED and "SYNC_MAX_RECORDS" in run.error
    assert catalog_rows(OPENROUTER) == before


def test_the_cap_stops_reading_pages(serve, http, settings):
    settings.SYNC_MAX_RECORDS = 50
    first = synthetic_openrouter(40)
    first["links"] = {"next": "/api/v1/models?output_modalities=all&page=2"}
    serve(OPENROUTER, first)
    second = synthetic_openrouter(40)
    second["links"] = {"next": "/api/v1/models?output_modalities=all&page=3"}
    serve(
        OPENROUTER,
        second,
        url="https://openrouter.ai/api/v1/models?output_modalities=all&page=2",
    )
    result = sync(OPENROUTER)
    assert result.status == SyncStatus.FAILED
    assert "at least 80 records" in result.error
    assert [call.request.url.endswith("page=3") for call in http.calls] == [False, False]
    assert not Model.objects.exists()


def test_a_snapshot_over_the_cap_is_refused(settings):
    from sync.transforms import transform_record

    spec = get_spec(OPENROUTER)
    records = [transform_record(spec, m) for m in synthetic_openrouter(6)["data"]]
    settings.SYNC_MAX_RECORDS = 5
    result = sync(OPENROUTER, records=records, force=True)
    assert result.status == SyncStatus.FAILED and "SYNC_MAX_RECORDS (5)" in result.error
    assert not Model.objects.exists()


def test_a_list_at_the_cap_is_synced(serve, settings):
    settings.SYNC_MAX_RECORDS = 50
    serve(OPENROUTER, synthetic_openrouter(50))
    result = sync(OPENROUTER)
    assert result.ok and result.created == 50
