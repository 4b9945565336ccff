from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from modelhub.cache import bump_catalog_version
from modelhub.models import HuggingFaceMetrics
from tests.support.builders import (
    PRICE_COLUMNS,
    load_openrouter,
    make_model,
    make_provider,
)
from tests.support.recorded import openrouter_records

pytestmark = pytest.mark.django_db

# The builder prices a model unless told otherwise; these rows have no price upstream.
UNPRICED = {"pricing_prompt": None, "pricing_completion": None}

ENVELOPE_KEYS = {
    "data",
    "total",
    "returned",
    "offset",
    "limit",
    "include_huggingface",
    "timestamp",
}
MODEL_KEYS = {
    "id",
    "name",
    "created",
    "description",
    "architecture",
    "top_provider",
    "pricing",
    "canonical_slug",
    "context_length",
    "hugging_face_id",
    "per_request_limits",
    "supported_parameters",
    "provider_slug",
}
ARCHITECTURE_KEYS = {
    "modality",
    "input_modalities",
    "output_modalities",
    "tokenizer",
    "instruct_type",
}
TOP_PROVIDER_KEYS = {"is_moderated", "context_length", "max_completion_tokens"}
METRICS_KEYS = {
    "downloads",
    "likes",
    "pipeline_tag",
    "num_parameters",
    "gated",
    "private",
    "last_modified",
    "author",
    "author_data",
    "available_inference_providers",
    "widget_output_urls",
    "is_liked_by_user",
}


def get(client, query="", status=200):
    response = client.get(f"/catalog/models{query}")
    assert response.status_code == status, response.content
    return response.json()


def ids(body):
    return [m["id"] for m in body["data"]]


@pytest.fixture
def openrouter_catalog():
    provider, models = load_openrouter()
    return provider, models


def test_every_openrouter_record_comes_back_in_its_own_shape(client, openrouter_catalog):
    body = get(client, "?limit=1000&include_huggingface=false")

    assert set(body) == ENVELOPE_KEYS
    records = {r["id"]: r for r in openrouter_records()}
    assert body["total"] == len(records) == body["returned"]
    for model in body["data"]:
        record = records[model["id"]]
        assert set(model) == MODEL_KEYS
        assert set(model["architecture"]) == ARCHITECTURE_KEYS
        assert set(model["top_provider"]) == TOP_PROVIDER_KEYS
        assert model["name"] == record["name"]
        assert model["created"] == record["created"]
        assert model["description"] == record["description"]
        assert model["context_length"] == record["context_length"]
        assert model["canonical_slug"] == record["canonical_slug"]
        # OpenRouter writes a missing Hugging Face id as null or ""; the catalog says null.
        assert model["hugging_face_id"] == (record["hugging_face_id"] or None)
        assert model["per_request_limits"] == record["per_request_limits"]
        assert model["supported_parameters"] == record["supported_parameters"]
        assert model["architecture"] == record["architecture"]
        assert model["top_provider"]["is_moderated"] == record["top_provider"]["is_moderated"]
        assert (
            model["top_provider"]["max_completion_tokens"]
            == record["top_provider"]["max_completion_tokens"]
        )
        assert model["provider_slug"] == "openrouter"
        for key in PRICE_COLUMNS:
            written = record["pricing"].get(key)
            if isinstance(written, str):
                # Stored with 18 decimal places (PRICE_FIELD); anything shorter is exact.
                if -Decimal(written).as_tuple().exponent <= 18:
                    assert model["pricing"][key] == written, (model["id"], key)
                else:
                    stored = Decimal(written).quantize(Decimal("1e-18"))
                    assert Decimal(model["pricing"][key]) == stored, (model["id"], key)
            elif key in ("prompt", "completion"):
                assert model["pricing"][key] is None
            else:
                assert key not in model["pricing"]


def test_price_strings(client):
    provider = make_provider(slug="p")
    make_model(
        provider,
        "a",
        pricing_prompt=Decimal("0.000002500000000000"),
        pricing_completion=Decimal("0E-18"),
        pricing_cache_read=Decimal("1.5E-7"),
        pricing_request=Decimal("-1"),
    )
    make_model(provider, "b", **UNPRICED)
    data = {m["id"]: m for m in get(client, "?include_huggingface=false")["data"]}

    assert data["a"]["pricing"] == {
        "prompt": "0.0000025",
        "completion": "0",
        "request": "-1",
        "input_cache_read": "0.00000015",
    }
    assert data["b"]["pricing"] == {"prompt": None, "completion": None}


def test_include_huggingface_adds_metrics_key(client):
    provider = make_provider(slug="p")
    make_model(provider, "with-hf", hugging_face_id="Qwen/Qwen2.5-7B-Instruct")
    make_model(provider, "without-hf")
    HuggingFaceMetrics.objects.create(
        hugging_face_id="Qwen/Qwen2.5-7B-Instruct",
        data={key: None for key in METRICS_KEYS} | {"downloads": 5},
    )

    body = get(client)
    assert body["include_huggingface"] is True
    data = {m["id"]: m for m in body["data"]}
    assert set(data["with-hf"]) == MODEL_KEYS | {"huggingface_metrics"}
    assert set(data["with-hf"]["huggingface_metrics"]) == METRICS_KEYS
    assert data["with-hf"]["huggingface_metrics"]["downloads"] == 5
    assert data["without-hf"]["huggingface_metrics"] is None

    body = get(client, "?include_huggingface=false")
    assert body["include_huggingface"] is False
    assert all("huggingface_metrics" not in m for m in body["data"])


@pytest.fixture
def mixed_catalog(org):
    openrouter = make_provider(slug="openrouter", name="OpenRouter")
    groq = make_provider(slug="groq", name="Groq")
    make_model(
        openrouter,
        "openai/gpt-4o",
        model_name="OpenAI: GPT-4o",
        modality="text+image->text",
        input_modalities=["text", "image"],
        context_length=128000,
        pricing_prompt=Decimal("0.0000025"),
        pricing_completion=Decimal("0.00001"),
        supports_vision=True,
        supports_tools=True,
        upstream_created_at="2024-05-13T00:00:00Z",
    )
    make_model(
        openrouter,
        "openrouter/auto",
        model_name="Auto Router",
        context_length=2000000,
        pricing_prompt=Decimal("-1"),
        pricing_completion=Decimal("-1"),
        upstream_created_at="2023-11-08T00:00:00Z",
    )
    make_model(
        openrouter,
        "google/gemini-2.5-flash-image",
        model_name="Google: Nano Banana",
        modality="text+image->text+image",
        input_modalities=["text", "image"],
        output_modalities=["text", "image"],
        context_length=32768,
        pricing_prompt=Decimal("0.0000003"),
        pricing_completion=None,
        upstream_created_at="2025-08-26T00:00:00Z",
    )
    make_model(
        groq,
        "llama-3.1-8b-instant",
        model_name="Llama 3.1 8B Instant",
        author="meta-llama",
        context_length=131072,
        pricing_prompt=Decimal("0.00000005"),
        pricing_completion=None,
        supports_tools=True,
        supports_json_mode=True,
        hugging_face_id="meta-llama/Llama-3.1-8B-Instruct",
    )
    make_model(groq, "whisper-large-v3", model_name="Whisper", modality="audio->text", **UNPRICED)
    make_model(groq, "retired-model", is_active=False, **UNPRICED)
    private = make_provider(slug="acme-ollama", organization=org)
    make_model(private, "llama3:8b", model_name="Private llama", **UNPRICED)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?provider=groq", ["llama-3.1-8b-instant", "whisper-large-v3"]),
        ("?provider=groq,openrouter&search=llama", ["llama-3.1-8b-instant"]),
        ("?search=GPT-4o", ["openai/gpt-4o"]),
        ("?q=meta-llama", ["llama-3.1-8b-instant"]),
        ("?search=nano banana", ["google/gemini-2.5-flash-image"]),
        ("?modality=text%2Bimage->text", ["openai/gpt-4o"]),
        ("?modality=audio", ["whisper-large-v3"]),
        ("?input_modality=image", ["google/gemini-2.5-flash-image", "openai/gpt-4o"]),
        ("?output_modality=image", ["google/gemini-2.5-flash-image"]),
        ("?min_context=131072", ["openrouter/auto", "llama-3.1-8b-instant"]),
        ("?max_price=0.000001", ["google/gemini-2.5-flash-image", "llama-3.1-8b-instant"]),
        ("?max_completion_price=0.00001", ["openai/gpt-4o"]),
        ("?capability=tools", ["llama-3.1-8b-instant", "openai/gpt-4o"]),
        ("?capability=tools,vision", ["openai/gpt-4o"]),
        ("?capability=json&capability=tools", ["llama-3.1-8b-instant"]),
        (
            "?sort=price",
            [
                "llama-3.1-8b-instant",
                "google/gemini-2.5-flash-image",
                "openai/gpt-4o",
                "whisper-large-v3",
                "openrouter/auto",
            ],
        ),
        ("?sort=-price&limit=2", ["openai/gpt-4o", "google/gemini-2.5-flash-image"]),
        ("?sort=context&limit=2", ["openrouter/auto", "llama-3.1-8b-instant"]),
        (
            "?sort=newest&limit=3",
            ["google/gemini-2.5-flash-image", "openai/gpt-4o", "openrouter/auto"],
        ),
    ],
)
def test_filters_and_sorts(client, mixed_catalog, query, expected):
    sep = "&" if "?" in query else "?"
    body = get(client, f"{query}{sep}include_huggingface=false")
    if "sort" in query:
        assert ids(body) == expected
    else:
        assert sorted(ids(body)) == sorted(expected)
    assert body["total"] >= len(expected)


def test_private_and_inactive_models_are_not_public(client, mixed_catalog):
    listed = ids(get(client, "?include_huggingface=false"))
    assert "llama3:8b" not in listed
    assert "retired-model" not in listed
    assert len(listed) == 5


@pytest.mark.parametrize(
    ("query", "expected_ids", "total"),
    [
        ("?limit=2", 2, 5),
        ("?limit=2&offset=4", 1, 5),
        ("?offset=5", 0, 5),
        ("?offset=99", 0, 5),
        ("?limit=1000", 5, 5),
    ],
)
def test_pagination_edges(client, mixed_catalog, query, expected_ids, total):
    body = get(client, f"{query}&include_huggingface=false")
    assert body["returned"] == len(body["data"]) == expected_ids
    assert body["total"] == total


def test_default_limit_and_offset(client, mixed_catalog):
    body = get(client, "?include_huggingface=false")
    assert body["limit"] == 100
    assert body["offset"] == 0


def test_pages_do_not_overlap(client, mixed_catalog):
    pages = [ids(get(client, f"?limit=2&offset={o}&include_huggingface=false")) for o in (0, 2, 4)]
    flat = [i for page in pages for i in page]
    assert sorted(flat) == sorted(ids(get(client, "?include_huggingface=false")))


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?offset=-5",
        "?include_huggingface=perhaps",
        "?min_context=big",
        "?max_price=cheap",
        "?max_price=-1",
        "?capability=telepathy",
        "?sort=popularity",
    ],
)
def test_bad_parameters_are_400(client, mixed_catalog, query):
    body = get(client, query, status=400)
    assert set(body) == {"detail"}


def test_query_count_does_not_grow_with_page_size(client):
    provider = make_provider(slug="bulk")
    for n in range(60):
        hf_id = f"org/model-{n}"
        make_model(provider, f"model-{n:02d}", hugging_face_id=hf_id)
        HuggingFaceMetrics.objects.create(hugging_face_id=hf_id, data={"downloads": n})

    counts = {}
    for limit in (5, 50):
        bump_catalog_version()  # cold: nothing cached
        with CaptureQueriesContext(connection) as queries:
            body = get(client, f"?limit={limit}")
        assert body["returned"] == limit
        assert all(m["huggingface_metrics"] is not None for m in body["data"])
        counts[limit] = len(queries)
    assert counts[5] == counts[50]
    assert counts[50] <= 3

    with CaptureQueriesContext(connection) as queries:
        get(client, "?limit=50")
    assert len(queries) == 0  # warm: page and metrics both cached


def test_list_is_cached_until_the_catalog_changes(client, mixed_catalog):
    assert get(client, "?include_huggingface=false")["total"] == 5
    make_model(make_provider(slug="new"), "fresh-model")
    assert get(client, "?include_huggingface=false")["total"] == 5
    bump_catalog_version()
    assert get(client, "?include_huggingface=false")["total"] == 6


def _failing_database(execute, sql, params, many, context):
    raise OperationalError("could not connect to server: Connection refused")


def test_database_unavailable_is_503(client, mixed_catalog):
    with connection.execute_wrapper(_failing_database):
        response = client.get("/catalog/models")
        assert response.status_code == 503
        assert set(response.json()) == {"detail"}
        assert client.get("/catalog/providers").status_code == 503
        assert client.get("/catalog/model/openai/gpt-4o").status_code == 503


def test_cached_answer_survives_a_database_outage(client, mixed_catalog):
    expected = get(client, "?include_huggingface=false")
    with connection.execute_wrapper(_failing_database):
        assert ids(get(client, "?include_huggingface=false")) == ids(expected)
