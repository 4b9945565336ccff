from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from catalog import huggingface, tasks
from modelhub.models import HuggingFaceMetrics
from tests.support.api import ADMIN_KEY
from tests.support.builders import make_model, make_provider
from tests.support.recorded import hf_body, hf_calls, hf_url

pytestmark = pytest.mark.django_db

QWEN = "Qwen/Qwen2.5-7B-Instruct"
GEMMA = "google/gemma-3-1b-it"
MAGISTRAL = "mistralai/Magistral-Small-2509"
GPT_OSS = "openai/gpt-oss-120b"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
RECORDED = {
    QWEN: "Qwen__Qwen2.5-7B-Instruct",
    GEMMA: "google__gemma-3-1b-it",
    MAGISTRAL: "mistralai__Magistral-Small-2509",
    GPT_OSS: "openai__gpt-oss-120b",
    LLAMA: "meta-llama__Llama-3.1-8B-Instruct",
}


def catalog_with(*hugging_face_ids):
    provider = make_provider(slug="hub")
    for n, hugging_face_id in enumerate(hugging_face_ids):
        make_model(provider, f"m{n:03d}", hugging_face_id=hugging_face_id)


def listed_metrics(client, query="?limit=1000"):
    response = client.get(f"/catalog/models{query}")
    assert response.status_code == 200, response.content
    return {m["hugging_face_id"]: m["huggingface_metrics"] for m in response.json()["data"]}


# --- Parsing the recorded answers ---------------------------------------------------------


def test_full_record():
    assert huggingface.parse_model(hf_body(RECORDED[QWEN])) == {
        "downloads": 6793526,
        "likes": 799,
        "pipeline_tag": "text-generation",
        "num_parameters": 7615616512,
        "gated": False,
        "private": False,
        "last_modified": "2025-01-12T02:10:10.000Z",
        "author": "Qwen",
        "author_data": None,
        "available_inference_providers": [],
        "widget_output_urls": [],
        "is_liked_by_user": False,
    }


def test_expanded_record_with_author_data():
    metrics = huggingface.parse_model(hf_body("Qwen__Qwen2.5-7B-Instruct.expand"))
    assert metrics["author_data"] == {
        "name": "Qwen",
        "fullname": "Qwen",
        "avatar_url": None,
        "follower_count": 62817,
    }
    assert metrics["downloads"] == 6793526
    assert metrics["num_parameters"] == 7615616512


def test_gated_as_a_string_is_kept():
    assert huggingface.parse_model(hf_body(RECORDED[GEMMA]))["gated"] == "manual"


def test_no_pipeline_tag():
    metrics = huggingface.parse_model(hf_body(RECORDED[MAGISTRAL]))
    assert metrics["pipeline_tag"] is None
    assert metrics["num_parameters"] == 24011361280


def test_parameters_over_several_dtypes_use_the_total():
    # BF16 2,167,371,072 + U8 118,244,966,400: the total, not the first dtype.
    assert huggingface.parse_model(hf_body(RECORDED[GPT_OSS]))["num_parameters"] == 120412337472


def test_parameters_only_in_safetensors_total():
    body = {"id": "x/y", "safetensors": {"total": 42}}
    assert huggingface.parse_model(body)["num_parameters"] == 42


def test_inference_provider_mapping_shapes():
    as_list = {
        "id": "x/y",
        "inferenceProviderMapping": [
            {"provider": "together", "status": "live"},
            {"provider": "novita", "status": "staging"},
        ],
    }
    as_object = {"id": "x/y", "inferenceProviderMapping": {"groq": {"status": "live"}}}
    assert huggingface.parse_model(as_list)["available_inference_providers"] == ["together"]
    assert huggingface.parse_model(as_object)["available_inference_providers"] == ["groq"]


@pytest.mark.parametrize("body", [None, [], "text", {"error": "Repository not found"}])
def test_unusable_bodies(body):
    assert huggingface.parse_model(body) is None


def test_odd_field_types_become_null():
    metrics = huggingface.parse_model(
        {"id": "x/y", "downloads": "many", "likes": True, "gated": 3, "safetensors": "no"}
    )
    assert metrics["downloads"] is None
    assert metrics["likes"] is None
    assert metrics["gated"] is None
    assert metrics["num_parameters"] is None


# --- Live fetches through the list endpoint ----------------------------------------------


def test_recorded_models_are_fetched_stored_and_served(client, http):
    catalog_with(*RECORDED)
    for hugging_face_id, name in RECORDED.items():
        http.get(hf_url(hugging_face_id), json=hf_body(name))

    metrics = listed_metrics(client)  # three live fetches, the budget
    assert len(hf_calls(http)) == 3
    assert sum(m is not None for m in metrics.values()) == 3
    metrics = listed_metrics(client)
    assert len(hf_calls(http)) == 5
    assert all(m is not None for m in metrics.values())
    assert metrics[GEMMA]["gated"] == "manual"
    assert metrics[MAGISTRAL]["pipeline_tag"] is None

    stored = HuggingFaceMetrics.objects.get(hugging_face_id=GPT_OSS)
    assert stored.found is True
    assert stored.error == ""
    assert stored.data["num_parameters"] == 120412337472
    assert timezone.now() - stored.fetched_at < timedelta(minutes=1)

    listed_metrics(client)
    assert len(hf_calls(http)) == 5  # all fresh now


def test_a_cold_page_makes_at_most_the_budgeted_live_calls(client, http, settings):
    settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST = 2
    catalog_with(*[f"org/model-{n}" for n in range(100)])
    for n in range(100):
        http.get(hf_url(f"org/model-{n}"), json={"id": f"org/model-{n}", "downloads": n})

    metrics = listed_metrics(client, "?limit=100")

    assert len(hf_calls(http)) == 2
    assert sum(m is not None for m in metrics.values()) == 2


@pytest.mark.parametrize(
    ("mock", "error"),
    [
        ({"status": 404, "json": {"error": "Repository not found"}}, "not_found"),
        ({"status": 401, "json": {"error": "Invalid credentials"}}, "not_found"),
        ({"status": 429, "json": {"error": "rate limited"}}, "rate_limited"),
        ({"status": 503, "body": "upstream down"}, "upstream_error"),
        ({"body": requests.ConnectionError("DNS failure")}, "unavailable"),
        ({"body": requests.ReadTimeout("slow")}, "unavailable"),
        ({"status": 200, "body": "<html>maintenance</html>"}, "invalid_response"),
        ({"status": 200, "json": ["not", "a", "model"]}, "invalid_response"),
    ],
)
def test_every_failure_degrades_to_no_metrics(client, http, mock, error):
    catalog_with(QWEN)
    http.get(hf_url(QWEN), **mock)

    metrics = listed_metrics(client)

    assert metrics == {QWEN: None}
    stored = HuggingFaceMetrics.objects.get(hugging_face_id=QWEN)
    assert stored.found is False
    assert stored.error == error
    assert client.get("/catalog/model/hub/m000").json()["data"]["huggingface_metrics"] is None


def test_an_outage_pauses_live_calls(client, http):
    catalog_with(QWEN, GEMMA, LLAMA)
    http.get(hf_url(QWEN), body=requests.ConnectionError("down"))
    http.get(hf_url(GEMMA), body=requests.ConnectionError("down"))
    http.get(hf_url(LLAMA), body=requests.ConnectionError("down"))

    listed_metrics(client)
    listed_metrics(client)

    assert len(hf_calls(http)) == 1
    assert huggingface.cache_status()["paused"] is True


def test_429_retry_after_sets_the_pause(client, http):
    from django.core.cache import cache

    catalog_with(QWEN)
    http.get(hf_url(QWEN), status=429, headers={"Retry-After": "120"})
    listed_metrics(client)
    assert cache.get(huggingface.BREAKER_KEY) == "rate_limited"


def test_a_transient_failure_keeps_the_last_good_metrics(client, http):
    catalog_with(QWEN)
    HuggingFaceMetrics.objects.create(
        hugging_face_id=QWEN,
        data={"downloads": 1},
        fetched_at=timezone.now() - timedelta(hours=2),
    )
    http.get(hf_url(QWEN), status=500)

    assert listed_metrics(client) == {QWEN: {"downloads": 1}}
    stored = HuggingFaceMetrics.objects.get(hugging_face_id=QWEN)
    assert stored.found is True
    assert stored.data == {"downloads": 1}
    assert stored.error == "upstream_error"


def test_fresh_entries_are_served_without_a_call(client, http):
    catalog_with(QWEN)
    HuggingFaceMetrics.objects.create(
        hugging_face_id=QWEN,
        data={"downloads": 1},
        fetched_at=timezone.now() - timedelta(minutes=59),
    )
    assert listed_metrics(client) == {QWEN: {"downloads": 1}}
    assert hf_calls(http) == []


def test_stale_entries_are_served_and_queued_for_the_task(
    client, http, settings, django_capture_on_commit_callbacks, celery_eager
):
    settings.HUGGINGFACE_BACKGROUND_REFRESH = True
    settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST = 1
    catalog_with(QWEN, GEMMA, LLAMA)
    HuggingFaceMetrics.objects.create(
        hugging_face_id=QWEN, data={"downloads": 1}, fetched_at=timezone.now() - timedelta(hours=2)
    )
    for hugging_face_id in (QWEN, GEMMA, LLAMA):
        http.get(hf_url(hugging_face_id), json=hf_body(RECORDED[hugging_face_id]))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        metrics = listed_metrics(client)

    # The stale entry is served as it is; one unseen id is fetched live (the budget).
    assert metrics[QWEN] == {"downloads": 1}
    assert len(hf_calls(http)) == 1
    assert len(callbacks) == 1
    callbacks[0]()  # the queued task runs (eagerly here)
    assert len(hf_calls(http)) == 3
    assert HuggingFaceMetrics.objects.get(hugging_face_id=QWEN).data["downloads"] == 6793526
    assert all(m is not None for m in listed_metrics(client).values())

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        listed_metrics(client)
    assert callbacks == []  # nothing stale any more


def test_without_a_worker_the_budget_also_refreshes_stale_entries(client, http):
    catalog_with(QWEN)
    HuggingFaceMetrics.objects.create(
        hugging_face_id=QWEN, data={"downloads": 1}, fetched_at=timezone.now() - timedelta(hours=2)
    )
    http.get(hf_url(QWEN), json=hf_body(RECORDED[QWEN]))
    assert listed_metrics(client)[QWEN]["downloads"] == 6793526


def test_expand_parameters_and_token_are_sent(client, http, settings):
    settings.HUGGINGFACE_EXPAND = ["downloads", "likes"]
    settings.HUGGINGFACE_TOKEN = "hf_test"
    catalog_with(QWEN)
    http.get(hf_url(QWEN), json=hf_body(RECORDED[QWEN]))
    listed_metrics(client)
    request = http.calls[0].request
    assert "expand%5B%5D=downloads&expand%5B%5D=likes" in request.url
    assert request.headers["Authorization"] == "Bearer hf_test"


# --- Task ---------------------------------------------------------------------------------


def test_task_names_and_time_limits():
    assert tasks.refresh_huggingface_metrics.name == "catalog.refresh_huggingface_metrics"
    assert tasks.refresh_huggingface_metrics.time_limit == 150
    assert tasks.refresh_huggingface_metrics.soft_time_limit == 120
    assert tasks.refresh_all_huggingface_metrics.name == "catalog.refresh_all_huggingface_metrics"
    assert tasks.refresh_all_huggingface_metrics.time_limit == 90


def test_task_is_idempotent_and_skips_ids_no_model_uses(http):
    catalog_with(QWEN)
    http.get(hf_url(QWEN), json=hf_body(RECORDED[QWEN]))
    assert tasks.refresh_huggingface_metrics(["gone/model", QWEN]) == 1
    assert tasks.refresh_huggingface_metrics([QWEN]) == 0  # fresh now
    assert len(hf_calls(http)) == 1
    assert not HuggingFaceMetrics.objects.filter(hugging_face_id="gone/model").exists()


# --- Admin endpoints ----------------------------------------------------------------------


def admin(client, method, path, key=ADMIN_KEY):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return getattr(client, method)(path, **headers)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin/huggingface-cache-status"), ("post", "/admin/refresh-huggingface-cache")],
)
def test_admin_endpoints_need_the_key(client, settings, method, path):
    assert admin(client, method, path, key=None).status_code == 401
    assert admin(client, method, path, key="wrong").status_code == 401
    settings.ADMIN_API_KEY = ""
    assert admin(client, method, path).status_code == 503


def test_cache_status(client, http):
    now = timezone.now()
    HuggingFaceMetrics.objects.create(
        hugging_face_id="a/fresh", data={"downloads": 1}, fetched_at=now - timedelta(minutes=5)
    )
    HuggingFaceMetrics.objects.create(
        hugging_face_id="a/stale", data={"downloads": 1}, fetched_at=now - timedelta(hours=3)
    )
    HuggingFaceMetrics.objects.create(
        hugging_face_id="a/missing", found=False, error="not_found", fetched_at=now
    )
    HuggingFaceMetrics.objects.create(
        hugging_face_id="a/limited",
        found=False,
        error="rate_limited",
        fetched_at=now - timedelta(minutes=30),
    )
    catalog_with("a/fresh", "a/stale", "a/missing")
    listed_metrics(client)  # fresh and missing: hits; stale: a miss (and refreshed live)

    body = admin(client, "get", "/admin/huggingface-cache-status").json()

    assert body["entries"] == 4
    assert body["with_metrics"] == 2
    assert body["failed"] == 3
    assert body["oldest_fetched_at"] == (now - timedelta(minutes=30)).isoformat()
    assert body["hits"] == 2
    assert body["misses"] == 1
    assert body["hit_rate"] == round(2 / 3, 4)
    assert body["fresh"] + body["stale"] == 4
    # the stale entry was retried (and failed: nothing registered), so it now waits
    # out the retry period; the rate-limited one is past it.
    assert body["stale"] == 1
    assert set(body) >= {"newest_fetched_at", "fresh_seconds", "live_fetches_per_request"}


def test_refresh_clears_and_schedules_a_refetch(
    client, http, django_capture_on_commit_callbacks, celery_eager
):
    catalog_with(QWEN, GEMMA)
    for hugging_face_id in (QWEN, GEMMA):
        HuggingFaceMetrics.objects.create(hugging_face_id=hugging_face_id, data={"downloads": 1})
        http.get(hf_url(hugging_face_id), json=hf_body(RECORDED[hugging_face_id]))
    HuggingFaceMetrics.objects.create(hugging_face_id="orphan/model", data={})
    assert listed_metrics(client)[QWEN] == {"downloads": 1}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin(client, "post", "/admin/refresh-huggingface-cache")

    assert response.status_code == 202
    assert response.json()["cleared"] == 3
    assert response.json()["scheduled"] is True
    assert len(hf_calls(http)) == 2
    assert set(HuggingFaceMetrics.objects.values_list("hugging_face_id", flat=True)) == {
        QWEN,
        GEMMA,
    }
    assert listed_metrics(client)[QWEN]["downloads"] == 6793526
    status = admin(client, "get", "/admin/huggingface-cache-status").json()
    assert status["fresh"] == 2
    assert status["hits"] == 2


def test_refresh_needs_post(client):
    assert admin(client, "get", "/admin/refresh-huggingface-cache").status_code == 405
