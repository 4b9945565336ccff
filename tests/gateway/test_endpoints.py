"""The OpenAI SDK against the gateway: every endpoint, both upstream protocols."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from modelhub.models import ClientKey
from modelhub.services import routing_rule_save
from tests.support.gateway import COMPLETION_PRICE, PROMPT_PRICE, metrics_rows

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_chat_completion_is_passed_through_with_the_provider_model_id(client, upstream, catalog):
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from the fake upstream"
    assert completion.usage.prompt_tokens == 10
    sent = upstream.requests[-1]
    assert sent["path"] == "/openai/v1/chat/completions"
    assert sent["body"]["model"] == "llama-3.1-8b"
    assert sent["headers"]["authorization"] == "Bearer sk-alpha-secret-0001"
    assert raw.headers["x-gateway-provider"] == "alpha"
    assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert raw.headers["x-gateway-attempts"] == "1"
    expected_cost = 10 * PROMPT_PRICE + 5 * COMPLETION_PRICE
    assert Decimal(raw.headers["x-gateway-cost"]) == expected_cost

    [row] = metrics_rows(1)
    assert row.requested_model == "alpha/llama-3.1-8b"
    assert row.served_model == "alpha/llama-3.1-8b"
    assert row.provider == catalog["providers"]["alpha"]
    assert row.credential == catalog["credentials"]["alpha"]
    assert (row.input_tokens, row.output_tokens, row.total_tokens) == (10, 5, 15)
    assert row.cost == expected_cost
    assert row.status_code == 200 and row.success
    assert row.attempts == 1 and row.fallbacks_used == 0


def test_provider_model_id_and_x_api_key_header(gateway, client_key, upstream):
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"X-Api-Key": client_key.raw_key},
        json={"model": "llama-3.1-8b", "messages": MESSAGES},
    )
    assert response.status_code == 200
    assert response.headers["x-gateway-model"] == "alpha/llama-3.1-8b"


def test_streaming_chat_arrives_in_chunks_with_usage_when_asked(client, upstream):
    stream = client.chat.completions.create(
        model="alpha/llama-3.1-8b",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream"
    assert chunks[-1].usage.completion_tokens == 5
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}

    [row] = metrics_rows(1)
    assert row.streamed and row.output_tokens == 5 and row.time_to_first_token_ms is not None


def test_streaming_without_usage_request_hides_the_usage_chunk_but_records_it(client, upstream):
    chunks = list(
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True)
    )
    assert all(chunk.choices for chunk in chunks)
    # The gateway asked for usage upstream all the same, to account for the stream.
    assert upstream.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    [row] = metrics_rows(1)
    assert (row.input_tokens, row.output_tokens) == (10, 5)


def test_completions(client):
    completion = client.completions.create(model="alpha/llama-3.1-8b", prompt="Once upon")
    assert completion.choices[0].text == "Hello from the fake upstream"
    streamed = list(client.completions.create(model="alpha/llama-3.1-8b", prompt="x", stream=True))
    assert (
        "".join(c.choices[0].text for c in streamed if c.choices) == "Hello from the fake upstream"
    )


def test_embeddings(client, upstream):
    result = client.embeddings.create(model="alpha/embed-small", input=["a", "b"])
    assert [d.embedding for d in result.data] == [[0.25, -0.5, 1.0]] * 2
    assert upstream.requests[-1]["path"] == "/openai/v1/embeddings"
    [row] = metrics_rows(1)
    assert row.model_type == "embedding" and row.input_tokens == 8


def test_anthropic_chat_is_translated_both_ways(client, upstream):
    completion = client.chat.completions.create(
        model="anthropic/claude-haiku",
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "Hello from the fake upstream"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 12 and completion.usage.completion_tokens == 6
    sent = upstream.requests[-1]
    assert sent["path"] == "/anthropic/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-anthropic-secret-0001"
    assert sent["body"] == {
        "model": "claude-haiku",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
        "max_tokens": 50,
    }


def test_anthropic_streaming_is_translated(client):
    chunks = list(
        client.chat.completions.create(
            model="anthropic/claude-haiku",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.prompt_tokens == 12 and chunks[-1].usage.completion_tokens == 6


def test_anthropic_does_not_serve_embeddings(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.embeddings.create(model="anthropic/claude-haiku", input="x")
    assert error.value.code == "unsupported_endpoint"


def test_models_list_and_detail(client, org, catalog):
    routing_rule_save(
        organization=org,
        name="fast",
        match_model="fast",
        targets=[{"model": catalog["models"]["beta"]}],
    )
    ids = [m.id for m in client.models.list()]
    assert ids == [
        "alpha/embed-small",
        "alpha/llama-3.1-8b",
        "anthropic/claude-haiku",
        "beta/meta/llama-3.1-8b",
        "fast",
    ]
    model = client.models.retrieve("beta/meta/llama-3.1-8b")
    assert model.owned_by == "beta"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope/nothing")


def test_models_list_follows_the_keys_allowed_models(gateway, make_key):
    issued = make_key(allowed_models=["alpha/*"])
    limited = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)
    assert [m.id for m in limited.models.list()] == ["alpha/embed-small", "alpha/llama-3.1-8b"]
    assert ClientKey.objects.get(pk=issued.client_key.pk)
