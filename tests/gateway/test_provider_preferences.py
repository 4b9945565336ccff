"""OpenRouter-style provider preferences through the real OpenAI SDK: the same model at
three providers, and which of them the gateway calls for each preference."""

from __future__ import annotations

import contextlib
import io
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.utils import timezone

from modelhub.models import ApiFormat
from modelhub.services import provider_credential_delete
from tests.support.builders import make_credential, make_metric, make_model, make_provider
from tests.support.gateway import metrics_rows
from tests.support.upstream import Action

MESSAGES = [{"role": "user", "content": "hi"}]
# What each provider calls gpt-4o upstream: how the fake upstream tells them apart.
UPSTREAM_NAMES = {"openai": "gpt-4o", "azure": "deployments/gpt-4o", "together": "openai/gpt-4o"}
README = Path(__file__).resolve().parents[2] / "README.md"
README_MARK = "<!-- provider-preferences -->"

pytestmark = pytest.mark.usefixtures("three")


@pytest.fixture
def three(org, upstream):
    """gpt-4o at openai (the name asked for), azure and together (the same weights under
    their own ids), each with a credential of ``org``; text-embedding-3-small at openai
    and azure.

    Prices (USD per million tokens, prompt/completion): openai 2.50/10, azure 3/12,
    together 0.90/0.90. Data policy: openai keeps prompts, azure neither keeps nor
    trains, together's is unknown. openai lists its parameters; azure has tools and no
    list; together has no capability at all.
    """
    base_url = f"{upstream.url}/openai/v1"
    openai_provider = make_provider(
        None, slug="openai", base_url=base_url, may_train_on_data=False, may_log_prompts=True
    )
    azure = make_provider(
        None, slug="azure", base_url=base_url, may_train_on_data=False, may_log_prompts=False
    )
    together = make_provider(None, slug="together", base_url=base_url)
    models = {
        "openai": make_model(
            openai_provider,
            UPSTREAM_NAMES["openai"],
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.0000025"),
            pricing_completion=Decimal("0.00001"),
            supports_tools=True,
            supports_json_mode=True,
            supported_parameters=["tools", "tool_choice", "response_format", "max_tokens"],
        ),
        "azure": make_model(
            azure,
            UPSTREAM_NAMES["azure"],
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.000003"),
            pricing_completion=Decimal("0.000012"),
            supports_tools=True,
        ),
        "together": make_model(
            together,
            UPSTREAM_NAMES["together"],
            canonical_slug="openai/gpt-4o",
            pricing_prompt=Decimal("0.0000009"),
            pricing_completion=Decimal("0.0000009"),
        ),
    }
    for provider in (openai_provider, azure):
        make_model(
            provider,
            "text-embedding-3-small"
            if provider is openai_provider
            else "deployments/text-embedding-3-small",
            canonical_slug="openai/text-embedding-3-small",
            modality="text->embedding",
            output_modalities=["embeddings"],
        )
    for provider in (openai_provider, azure, together):
        assert provider.api_format == ApiFormat.OPENAI
        make_credential(org, provider, name=provider.slug, secret=f"sk-{provider.slug}-000001")
    return models


def chat(client, provider: dict | None = None, **fields):
    """A chat completion with these preferences; answers the raw response."""
    extra = {"provider": provider} if provider is not None else {}
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, extra_body=extra, **fields
    )


def hits(upstream) -> dict[str, int]:
    """Upstream requests per provider, by the name each one was sent."""
    return {slug: len(upstream.requests_for(name)) for slug, name in UPSTREAM_NAMES.items()}


def served_by(raw) -> str:
    return raw.headers["x-gateway-provider"]


def test_without_preferences_the_name_asked_for_serves(client, upstream):
    assert served_by(chat(client)) == "openai"


def test_order(client, upstream):
    raw = chat(client, {"order": ["together", "azure"]})
    assert served_by(raw) == "together"
    assert hits(upstream) == {"openai": 0, "azure": 0, "together": 1}


def test_order_falls_back_to_the_next_in_order_then_the_others(client, upstream):
    upstream.script(UPSTREAM_NAMES["together"], *[Action("status", status=503)] * 2)
    raw = chat(client, {"order": ["together", "azure"]})
    assert served_by(raw) == "azure"
    assert hits(upstream) == {"openai": 0, "azure": 1, "together": 2}


def test_only(client, upstream):
    raw = chat(client, {"only": ["azure"]})
    assert served_by(raw) == "azure"
    assert hits(upstream) == {"openai": 0, "azure": 1, "together": 0}


def test_only_never_falls_back_outside_the_list(client, upstream):
    upstream.script(UPSTREAM_NAMES["azure"], *[Action("status", status=503)] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        chat(client, {"only": ["azure"]})
    assert error.value.status_code == 502
    assert hits(upstream) == {"openai": 0, "azure": 2, "together": 0}


def test_ignore(client, upstream):
    raw = chat(client, {"ignore": ["openai"]})
    # The name asked for is openai's; of the others, the cheapest first.
    assert served_by(raw) == "together"
    assert hits(upstream)["openai"] == 0


def test_allow_fallbacks_false_keeps_to_the_ordered_provider_when_it_fails(client, upstream):
    upstream.script(UPSTREAM_NAMES["azure"], *[Action("status", status=503)] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        chat(client, {"order": ["azure"], "allow_fallbacks": False})
    assert error.value.status_code == 502
    assert "Every upstream failed" in error.value.message
    assert hits(upstream) == {"openai": 0, "azure": 2, "together": 0}
    [row] = metrics_rows(1)
    assert not row.success and row.provider.slug == "azure"


def test_allow_fallbacks_true_moves_on_when_the_ordered_provider_fails(client, upstream):
    upstream.script(UPSTREAM_NAMES["azure"], *[Action("status", status=503)] * 2)
    raw = chat(client, {"order": ["azure"], "allow_fallbacks": True})
    assert served_by(raw) == "openai"
    assert raw.headers["x-gateway-fallbacks"] == "1"
    assert hits(upstream) == {"openai": 1, "azure": 2, "together": 0}


def test_allow_fallbacks_false_alone_keeps_to_the_first_provider(client, upstream):
    upstream.script(UPSTREAM_NAMES["openai"], *[Action("status", status=503)] * 2)
    with pytest.raises(openai.InternalServerError):
        chat(client, {"allow_fallbacks": False})
    assert hits(upstream) == {"openai": 2, "azure": 0, "together": 0}


def test_sort_by_price(client, upstream):
    assert served_by(chat(client, {"sort": "price"})) == "together"


def test_sort_by_latency(client, org, three, upstream):
    recent = timezone.now() - timedelta(minutes=5)
    make_metric(org, model=three["azure"], latency_ms=150, created_at=recent)
    make_metric(org, model=three["together"], latency_ms=700, created_at=recent)
    make_metric(org, model=three["openai"], latency_ms=900, created_at=recent)
    assert served_by(chat(client, {"sort": "latency"})) == "azure"


def test_sort_by_throughput(client, org, three, upstream):
    recent = timezone.now() - timedelta(minutes=5)
    for slug, tokens in (("openai", 40), ("azure", 90), ("together", 300)):
        make_metric(
            org, model=three[slug], output_tokens=tokens, latency_ms=1000, created_at=recent
        )
    assert served_by(chat(client, {"sort": "throughput"})) == "together"


def test_max_price(client, upstream):
    # Per million tokens: only together is under 1/1.
    raw = chat(client, {"max_price": {"prompt": 1, "completion": 1}})
    assert served_by(raw) == "together"
    # Strings are prices too; azure (3/12) is over.
    raw = chat(client, {"max_price": {"prompt": "2.5"}, "order": ["azure"]})
    assert served_by(raw) == "openai"
    assert hits(upstream)["azure"] == 0


def test_data_collection_deny(client, upstream):
    raw = chat(client, {"data_collection": "deny"})
    # openai keeps prompts and together's policy is unknown.
    assert served_by(raw) == "azure"
    assert served_by(chat(client, {"data_collection": "allow"})) == "openai"


def test_require_parameters(client, upstream):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    # Without it, together (no tools) is the cheapest once openai is ignored...
    assert served_by(chat(client, {"ignore": ["openai"]}, tools=tools)) == "together"
    # ...with it, only a provider with tools may serve.
    raw = chat(client, {"ignore": ["openai"], "require_parameters": True}, tools=tools)
    assert served_by(raw) == "azure"
    # A JSON schema answer: openai lists response_format but not structured outputs.
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    with pytest.raises(openai.NotFoundError) as error:
        chat(client, {"require_parameters": True}, response_format=schema)
    assert "openai does not support structured_outputs" in error.value.message
    raw = chat(client, {"require_parameters": True}, response_format={"type": "json_object"})
    assert served_by(raw) == "openai"


def test_no_provider_left_is_a_404_naming_what_each_preference_dropped(client, upstream):
    with pytest.raises(openai.NotFoundError) as error:
        chat(client, {"ignore": ["openai"], "max_price": {"prompt": 2.5}, "only": ["azure"]})
    assert error.value.status_code == 404
    body = error.value.body
    assert body["code"] == "no_provider_left" and body["param"] == "provider"
    assert body["message"] == (
        "No provider left for model 'gpt-4o' after your provider preferences: "
        "openai dropped by ignore; together not in only; "
        "azure over max_price.prompt 2.50 (charges 3.00)."
    )
    assert sum(hits(upstream).values()) == 0


def test_preferences_leaving_a_provider_without_credential_say_so(client, org, three, upstream):
    for credential in three["azure"].provider.credentials.all():
        provider_credential_delete(credential=credential)
    with pytest.raises(openai.NotFoundError) as error:
        chat(client, {"only": ["azure"]})
    assert error.value.body["message"] == (
        "No provider left for model 'gpt-4o' after your provider preferences: "
        "openai not in only; together not in only; "
        "The organization has no credential for provider 'azure'."
    )


def test_different_preferences_get_different_cached_plans(long_plan_cache, client, upstream):
    assert served_by(chat(client, {"only": ["azure"]})) == "azure"
    assert served_by(chat(client, {"only": ["together"]})) == "together"
    assert served_by(chat(client)) == "openai"
    assert served_by(chat(client, {"only": ["azure"]})) == "azure"
    assert hits(upstream) == {"openai": 1, "azure": 2, "together": 1}


def test_streams_follow_the_preferences(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        extra_body={"provider": {"order": ["together"]}},
    )
    assert served_by(raw) == "together"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)


def test_completions_take_preferences(client, upstream):
    raw = client.completions.with_raw_response.create(
        model="gpt-4o", prompt="Say hi", extra_body={"provider": {"only": ["together"]}}
    )
    assert served_by(raw) == "together"
    assert upstream.requests[-1]["path"].endswith("/completions")
    assert "provider" not in upstream.requests[-1]["body"]


def test_embeddings_take_preferences(client, upstream):
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hi", extra_body={"provider": {"ignore": ["openai"]}}
    )
    assert served_by(raw) == "azure"
    assert upstream.requests[-1]["body"]["model"] == "deployments/text-embedding-3-small"


def test_a_bad_preference_is_a_400_through_the_sdk(client, upstream):
    with pytest.raises(openai.BadRequestError) as error:
        chat(client, {"only": "openai"})
    assert error.value.param == "provider.only"
    assert sum(hits(upstream).values()) == 0


def test_the_readme_snippet_runs_as_written(gateway, client_key, upstream, monkeypatch):
    blocks = re.findall(
        re.escape(README_MARK) + r"\s*```python\n(.*?)```", README.read_text(), re.S
    )
    assert len(blocks) == 1
    code = blocks[0].replace("http://127.0.0.1:8000", gateway.url)
    monkeypatch.setenv("MODELHUB_KEY", client_key.raw_key)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().split()[0] == "azure"
    assert hits(upstream) == {"openai": 0, "azure": 1, "together": 0}


def test_responses_take_preferences(client, upstream):
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="hi", store=False, extra_body={"provider": {"only": ["azure"]}}
    )
    assert served_by(raw) == "azure"
    assert raw.parse().output_text
    assert hits(upstream) == {"openai": 0, "azure": 1, "together": 0}
    assert "provider" not in upstream.requests[-1]["body"]


def test_messages_take_preferences(gateway, client_key, upstream):
    import anthropic

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=client_key.raw_key, max_retries=0)
    raw = claude.messages.with_raw_response.create(
        model="gpt-4o",
        max_tokens=50,
        messages=MESSAGES,
        extra_body={"provider": {"order": ["together"], "allow_fallbacks": False}},
    )
    assert raw.headers["x-gateway-provider"] == "together"
    assert raw.parse().content[0].text
    assert hits(upstream) == {"openai": 0, "azure": 0, "together": 1}


def test_messages_refuse_bad_preferences_in_anthropics_shape(gateway, client_key, upstream):
    import anthropic

    claude = anthropic.Anthropic(base_url=gateway.url, api_key=client_key.raw_key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(
            model="gpt-4o",
            max_tokens=50,
            messages=MESSAGES,
            extra_body={"provider": {"sort": "fastest"}},
        )
    assert error.value.body["error"]["type"] == "invalid_request_error"
    assert "provider.sort" in error.value.body["error"]["message"]
    assert upstream.requests == []
