from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from modelhub.cache import bump_catalog_version
from modelhub.models import HuggingFaceMetrics, Model
from tests.support.builders import make_model, make_provider
from tests.support.recorded import OPENROUTER_API, fixture

pytestmark = pytest.mark.django_db

LLAMA_HF = "meta-llama/Llama-3.3-70B-Instruct"
DETAIL_KEYS = {
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
    "provider_site_url",
    "model_logo_url",
    "source_gateway",
    "huggingface_metrics",
    "endpoints",
}
ENDPOINT_KEYS = {
    "provider_name",
    "provider_slug",
    "gateway",
    "model_id",
    "context_length",
    "pricing",
    "max_completion_tokens",
    "max_prompt_tokens",
    "quantization",
    "supported_parameters",
    "status",
    "uptime_last_30m",
}


def detail(client, path, query="", status=200):
    response = client.get(f"/catalog/model/{path}{query}")
    assert response.status_code == status, response.content
    return response.json()


@pytest.fixture
def llama(org):
    """One model offered by several providers, plus look-alikes that must not match."""
    make_provider(
        slug="meta-llama",
        name="Meta",
        site_url="https://llama.meta.com",
        logo_url="https://llama.meta.com/logo.png",
    )
    openrouter = make_provider(
        slug="openrouter", name="OpenRouter", site_url="https://openrouter.ai"
    )
    common = {"canonical_slug": "meta-llama/llama-3.3-70b-instruct", "hugging_face_id": LLAMA_HF}
    make_model(
        openrouter,
        "meta-llama/llama-3.3-70b-instruct",
        model_name="Meta: Llama 3.3 70B Instruct",
        context_length=131072,
        max_completion_tokens=16384,
        pricing_prompt=Decimal("0.0000001"),
        pricing_completion=Decimal("0.00000032"),
        supported_parameters=["tools", "max_tokens"],
        per_request_limits={"prompt_tokens": "131072", "completion_tokens": "16384"},
        **common,
    )
    make_model(
        openrouter,
        "meta-llama/llama-3.3-70b-instruct:free",
        model_name="Meta: Llama 3.3 70B Instruct (free)",
        pricing_prompt=Decimal("0"),
        pricing_completion=Decimal("0"),
        **common,
    )
    make_model(
        make_provider(slug="deepinfra", name="DeepInfra"),
        LLAMA_HF,
        hugging_face_id=LLAMA_HF,
        pricing_prompt=Decimal("0.00000023"),
        pricing_completion=Decimal("0.0000004"),
    )
    make_model(make_provider(slug="featherless", name="Featherless"), LLAMA_HF)
    make_model(
        make_provider(slug="groq", name="Groq"),
        "llama-3.3-70b-versatile",
        hugging_face_id=LLAMA_HF,
        pricing_prompt=Decimal("0.00000059"),
        pricing_completion=Decimal("0.00000079"),
    )
    make_model(make_provider(slug="nebius", name="Nebius"), LLAMA_HF.lower())
    together = make_provider(slug="together", name="Together")
    make_model(together, "meta-llama/Llama-3.3-70B-Instruct-Turbo")
    make_model(together, "meta-llama/Llama-3.1-8B-Instruct", hugging_face_id="x/other")
    private = make_provider(slug="acme-vllm", organization=org)
    make_model(private, LLAMA_HF, hugging_face_id=LLAMA_HF)


def test_detail_shape(client, llama):
    body = detail(client, "meta-llama/llama-3.3-70b-instruct")

    assert set(body) == {"data", "provider", "model", "gateway", "include_huggingface", "timestamp"}
    assert body["provider"] == "meta-llama"
    assert body["model"] == "llama-3.3-70b-instruct"
    assert body["gateway"] == "openrouter"
    assert body["include_huggingface"] is True
    data = body["data"]
    assert set(data) == DETAIL_KEYS
    assert data["id"] == "meta-llama/llama-3.3-70b-instruct"
    assert data["name"] == "Meta: Llama 3.3 70B Instruct"
    assert data["provider_slug"] == "meta-llama"
    assert data["provider_site_url"] == "https://llama.meta.com"
    assert data["model_logo_url"] == "https://llama.meta.com/logo.png"
    assert data["source_gateway"] == "openrouter"
    assert data["pricing"] == {"prompt": "0.0000001", "completion": "0.00000032"}
    for endpoint in data["endpoints"]:
        assert set(endpoint) == ENDPOINT_KEYS
    first_paid = data["endpoints"][1]
    assert first_paid == {
        "provider_name": "OpenRouter",
        "provider_slug": "openrouter",
        "gateway": "openrouter",
        "model_id": "meta-llama/llama-3.3-70b-instruct",
        "context_length": 131072,
        "pricing": {"prompt": "0.0000001", "completion": "0.00000032"},
        "max_completion_tokens": 16384,
        "max_prompt_tokens": 131072,
        "quantization": None,
        "supported_parameters": ["tools", "max_tokens"],
        "status": None,
        "uptime_last_30m": None,
    }


def test_endpoints_match_across_providers_cheapest_first(client, llama):
    endpoints = detail(client, "meta-llama/llama-3.3-70b-instruct")["data"]["endpoints"]

    assert [(e["provider_slug"], e["model_id"]) for e in endpoints] == [
        ("openrouter", "meta-llama/llama-3.3-70b-instruct:free"),  # canonical id, "0"
        ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ("deepinfra", LLAMA_HF),  # Hugging Face id
        ("groq", "llama-3.3-70b-versatile"),  # Hugging Face id, another name
        ("featherless", LLAMA_HF),  # normalised name, no price: after the priced ones
        ("nebius", LLAMA_HF.lower()),
    ]


def test_the_same_endpoints_whichever_offer_is_asked_for(client, llama):
    from_groq = detail(client, "groq/llama-3.3-70b-versatile")["data"]["endpoints"]
    from_openrouter = detail(client, "meta-llama/llama-3.3-70b-instruct")["data"]["endpoints"]
    assert from_groq == from_openrouter


@pytest.mark.parametrize(
    ("path", "source", "model_id"),
    [
        ("meta-llama/llama-3.3-70b-instruct", "openrouter", "meta-llama/llama-3.3-70b-instruct"),
        # Listed verbatim by featherless, deepinfra and nebius: featherless is preferred.
        ("meta-llama/Llama-3.3-70B-Instruct", "featherless", LLAMA_HF),
        (
            "meta-llama/llama-3.3-70b-instruct:free",
            "openrouter",
            "meta-llama/llama-3.3-70b-instruct:free",
        ),
        ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("META-LLAMA/LLAMA-3.3-70B-INSTRUCT", "openrouter", "meta-llama/llama-3.3-70b-instruct"),
    ],
)
def test_auto_detection(client, llama, path, source, model_id):
    data = detail(client, path)["data"]
    assert data["source_gateway"] == source
    assert data["id"] == model_id


def test_auto_detection_order(client, settings):
    for slug in ("zeta", "alpha", "deepinfra"):
        make_model(make_provider(slug=slug), "acme/m1.5")
    acme = make_provider(slug="acme")
    make_model(acme, "m1.5")
    order = []
    for _ in range(4):
        source = detail(client, "acme/m1.5")["data"]["source_gateway"]
        order.append(source)
        Model.objects.filter(provider__slug=source).update(is_active=False)
        bump_catalog_version()
    # Gateways in preference order, then the provider named in the path, then by slug.
    assert order == ["deepinfra", "acme", "alpha", "zeta"]
    detail(client, "acme/m1.5", status=404)


def test_preference_order_is_a_setting(client, llama, settings):
    settings.CATALOG_GATEWAY_PREFERENCE = ["deepinfra", "featherless"]
    assert detail(client, LLAMA_HF)["data"]["source_gateway"] == "deepinfra"


def test_model_names_with_slashes_dots_and_colons(client):
    fireworks = make_provider(slug="fireworks")
    make_model(fireworks, "accounts/fireworks/models/llama-v3p1-8b-instruct")
    openrouter = make_provider(slug="openrouter")
    make_model(openrouter, "~anthropic/claude-haiku-latest")
    make_model(openrouter, "openai/gpt-4o-mini:batch")

    assert (
        detail(client, "fireworks/accounts/fireworks/models/llama-v3p1-8b-instruct")["data"]["id"]
        == "accounts/fireworks/models/llama-v3p1-8b-instruct"
    )
    assert detail(client, "~anthropic/claude-haiku-latest")["data"]["id"] == (
        "~anthropic/claude-haiku-latest"
    )
    assert detail(client, "openai/gpt-4o-mini:batch")["data"]["id"] == "openai/gpt-4o-mini:batch"
    assert detail(client, "openai/gpt-4o-mini%3Abatch")["model"] == "gpt-4o-mini:batch"


def test_explicit_gateway(client, llama):
    body = detail(client, "meta-llama/Llama-3.3-70B-Instruct", "?gateway=deepinfra")
    assert body["gateway"] == "deepinfra"
    assert body["data"]["source_gateway"] == "deepinfra"
    assert body["data"]["pricing"]["prompt"] == "0.00000023"
    body = detail(client, "meta-llama/Llama-3.3-70B-Instruct", "?gateway=NEBIUS")
    assert body["data"]["source_gateway"] == "nebius"


def test_unknown_gateway_is_400_listing_the_valid_ones(client, llama):
    body = detail(client, "meta-llama/llama-3.3-70b-instruct", "?gateway=nope", status=400)
    assert "nope" in body["detail"]
    assert body["valid_gateways"] == sorted(body["valid_gateways"])
    for slug in ("openrouter", "portkey", "featherless", "deepinfra", "chutes", "groq", "nebius"):
        assert slug in body["valid_gateways"]
        assert slug in body["detail"]
    assert "acme-vllm" not in body["valid_gateways"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("meta-llama/llama-9-instruct", ""),
        ("nobody/nothing", ""),
        ("meta-llama/llama-3.3-70b-instruct", "?gateway=portkey"),  # valid but not synced
        ("meta-llama/llama-3.3-70b-instruct", "?gateway=groq"),  # synced, not listed there
        ("acme-vllm/" + LLAMA_HF, ""),  # an organization's private provider
    ],
)
def test_unknown_model_is_404(client, llama, path, query):
    body = detail(client, path, query, status=404)
    assert set(body) == {"detail"}


@pytest.mark.parametrize("query", ["?include_huggingface=sometimes", "?include_huggingface="])
def test_bad_boolean(client, llama, query):
    if query.endswith("="):
        detail(client, "meta-llama/llama-3.3-70b-instruct", query)  # empty means default
    else:
        detail(client, "meta-llama/llama-3.3-70b-instruct", query, status=400)


def test_huggingface_metrics_in_detail(client, llama):
    HuggingFaceMetrics.objects.create(hugging_face_id=LLAMA_HF, data={"downloads": 7})
    path = "meta-llama/llama-3.3-70b-instruct"
    assert detail(client, path)["data"]["huggingface_metrics"] == {"downloads": 7}
    body = detail(client, path, "?include_huggingface=false")
    assert body["data"]["huggingface_metrics"] is None
    assert body["include_huggingface"] is False


# --- Live OpenRouter endpoints ------------------------------------------------------------

LIVE_URL = f"{OPENROUTER_API}/models/meta-llama/llama-3.3-70b-instruct/endpoints"


def test_no_live_call_without_a_key(client, llama, http):
    detail(client, "meta-llama/llama-3.3-70b-instruct", "?include_huggingface=false")
    assert len(http.calls) == 0


def test_live_openrouter_endpoints_are_merged(client, llama, http, settings):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    http.get(
        LIVE_URL, json=fixture("providers/openrouter-model-endpoints-current.json")["response"]
    )

    path, query = "meta-llama/llama-3.3-70b-instruct", "?include_huggingface=false"
    endpoints = detail(client, f"{path}:free", query)["data"]["endpoints"]

    assert http.calls[0].request.headers["Authorization"] == "Bearer sk-or-test"
    via_openrouter = [e for e in endpoints if e["gateway"] == "openrouter"]
    assert [e["provider_name"] for e in via_openrouter] == [
        "DeepInfra",
        "Novita",
        "SiliconFlow",
        "DeepSeek",
    ]
    deepinfra = via_openrouter[0]
    assert deepinfra["pricing"] == {
        "prompt": "0.000000269",
        "completion": "0.0000004",
        "input_cache_read": "0.0000001345",
    }
    assert deepinfra["quantization"] == "fp4"
    assert deepinfra["status"] == 0
    assert deepinfra["uptime_last_30m"] == 99.93
    assert deepinfra["max_completion_tokens"] == 65536
    assert deepinfra["max_prompt_tokens"] is None
    # The stored OpenRouter offers are replaced by the live per-host ones; the rest stay.
    assert not any(e.get("model_id", "").startswith("meta-llama/llama-3.3") for e in via_openrouter)
    assert {e["provider_slug"] for e in endpoints if e["gateway"] != "openrouter"} == {
        "deepinfra",
        "groq",
        "featherless",
        "nebius",
    }
    prompts = [Decimal(e["pricing"]["prompt"]) for e in endpoints if e["pricing"].get("prompt")]
    assert prompts == sorted(prompts)

    detail(client, path, query)
    assert len(http.calls) == 1  # cached


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "json": {"error": "boom"}},
        {"status": 401, "json": {"error": {"message": "No auth"}}},
        {"body": requests.ConnectTimeout("timed out")},
        {"status": 200, "body": "<html>not json</html>"},
        {"status": 200, "json": {"data": {"endpoints": "none"}}},
    ],
)
def test_live_failures_fall_back_to_the_database(client, llama, http, settings, failure):
    settings.OPENROUTER_API_KEY = "sk-or-test"
    http.get(LIVE_URL, **failure)

    endpoints = detail(client, "meta-llama/llama-3.3-70b-instruct")["data"]["endpoints"]

    assert len(endpoints) == 6
    assert [e["provider_slug"] for e in endpoints][:2] == ["openrouter", "openrouter"]
