"""Anthropic's Messages API at ``/v1/messages``, driven with the real Anthropic SDK through
the gateway under uvicorn, against the fake upstream's OpenAI-compatible and Anthropic
routes: requests translated into chat completions and back, or passed through as they
are to an Anthropic upstream."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import pytest

from gateway.anthropic import MessagesDialect, messages_chat_body
from gateway.parse import estimate_tokens, output_bound, parse_body, prompt_bound
from gateway.upstreams import CHAT
from modelhub.models import ApiFormat, Model, Provider
from tests.support.gateway import metrics_rows
from tests.support.upstream import WORDS, Action

MODEL = "alpha/llama-3.1-8b"
CLAUDE = "anthropic/claude-haiku"
USER = [{"role": "user", "content": "hi"}]
TEXT = "".join(WORDS)
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# A PNG's first bytes are enough for a translation test.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture
def claude(gateway, client_key):
    """The real Anthropic SDK pointed at the gateway (it appends /v1/messages itself)."""
    return anthropic.Anthropic(base_url=gateway.url, api_key=client_key.raw_key, max_retries=0)


def _sent(upstream, model: str) -> dict:
    [request] = upstream.requests_for(model)
    return request


# --- Translated into chat completions -----------------------------------------------------


def test_create_answers_a_message_from_an_openai_upstream(claude, upstream):
    message = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=USER,
        # Sampling settings older models take; this SDK sends them as extra fields.
        extra_body={"temperature": 0.5},
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == TEXT
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5
    assert message.model == "llama-3.1-8b"
    sent = _sent(upstream, "llama-3.1-8b")
    assert sent["path"] == "/openai/v1/chat/completions"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["body"]["max_tokens"] == 100 and sent["body"]["temperature"] == 0.5


def test_system_text_blocks_and_multi_turn_history(claude, upstream):
    claude.messages.create(
        model=MODEL,
        max_tokens=50,
        system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "How are you?"},
        ],
        extra_body={"top_k": 5},
        metadata={"user_id": "user-7"},
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    body = _sent(upstream, "llama-3.1-8b")["body"]
    assert body["messages"] == [
        {"role": "system", "content": "One.\n\nTwo."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "How are you?"},
    ]
    assert body["user"] == "user-7"
    # No chat equivalent every OpenAI-compatible server takes.
    assert "top_k" not in body and "thinking" not in body


def test_stream_text_and_final_message(claude, upstream):
    with claude.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == WORDS, "each chunk is an event of its own, as it arrives"
    assert final.content[0].text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 10 and final.usage.output_tokens == 5
    assert _sent(upstream, "llama-3.1-8b")["body"]["stream"] is True


def test_stream_event_sequence(gateway, client_key):
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": USER, "stream": True},
        headers={"x-api-key": client_key.raw_key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    events = [block.split("\n") for block in body.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(WORDS),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert [p["type"] for p in payloads] == names
    assert payloads[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[-2]["usage"]["output_tokens"] == 5


def test_tool_round_trip(claude, upstream):
    calls = [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    upstream.script("llama-3.1-8b", Action(tool_calls=calls))
    first = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert (use.type, use.id, use.name, use.input) == (
        "tool_use",
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    sent = upstream.requests[-1]["body"]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "The weather in a city.",
            },
        }
    ]
    assert sent["tool_choice"] == "required"

    second = claude.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "Sunny, 21 C"}],
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    assert second.content[0].text == TEXT
    assert upstream.requests[-1]["body"]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_tool_error_results_and_named_tool_choice(claude, upstream):
    claude.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "X"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "no such city",
                        "is_error": True,
                    }
                ],
            },
        ],
    )
    body = upstream.requests[-1]["body"]
    assert body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": "Error: no such city",
    }
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_streamed_tool_call(claude, upstream):
    calls = [{"id": "call_9", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    upstream.script("llama-3.1-8b", Action(tool_calls=calls))
    with claude.messages.stream(
        model=MODEL, max_tokens=100, messages=USER, tools=[WEATHER]
    ) as stream:
        final = stream.get_final_message()
    [use] = final.content
    assert (use.type, use.id, use.name, use.input) == (
        "tool_use",
        "call_9",
        "get_weather",
        {"city": "Oslo"},
    )
    assert final.stop_reason == "tool_use"


def test_stop_sequences(claude, upstream):
    message = claude.messages.create(
        model=MODEL, max_tokens=100, messages=USER, stop_sequences=["END", "STOP"]
    )
    assert _sent(upstream, "llama-3.1-8b")["body"]["stop"] == ["END", "STOP"]
    assert message.stop_reason == "end_turn"
    # A server that says which sequence ended the text (vLLM's stop_reason) is believed.
    upstream.script("llama-3.1-8b", Action(stop_reason="STOP"))
    message = claude.messages.create(
        model=MODEL, max_tokens=100, messages=USER, stop_sequences=["END", "STOP"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")


def test_base64_and_url_images_become_image_url_parts(claude, upstream):
    claude.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                ],
            }
        ],
    )
    [message] = _sent(upstream, "llama-3.1-8b")["body"]["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
    ]


def test_usage_with_cached_prompt_tokens(claude, upstream):
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 60},
    }
    upstream.script("llama-3.1-8b", Action(usage=usage))
    message = claude.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert message.usage.input_tokens == 40
    assert message.usage.cache_read_input_tokens == 60
    assert message.usage.output_tokens == 7


def test_routing_keys_reach_the_internal_request(claude, upstream, gateway_settings):
    """``models`` (OpenRouter's fallbacks) is read by the gateway, not sent upstream."""
    gateway_settings.GATEWAY_RETRIES_PER_CANDIDATE = 0
    for name in ("llama-3.1-8b", "meta/llama-3.1-8b"):  # the model and its twin at beta
        upstream.script(name, *[Action("status", status=500)] * 5)
    message = claude.messages.create(
        model="alpha/llama-3.1-8b",
        max_tokens=100,
        messages=USER,
        extra_body={"models": ["alpha/llama-3.1-8b", CLAUDE]},
    )
    assert message.model == "claude-haiku"
    assert "models" not in upstream.requests_for("claude-haiku")[0]["body"]


def test_metric_rows_are_recorded(claude, gateway, client_key):
    message = claude.messages.create(model=MODEL, max_tokens=100, messages=USER)
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream:
        stream.get_final_message()
    first, second = metrics_rows(2)
    assert message.id == f"msg_{first.request_id}"
    assert (first.requested_model, first.served_model) == (MODEL, MODEL)
    assert (first.input_tokens, first.output_tokens, first.status_code) == (10, 5, 200)
    assert first.cost > 0 and not first.streamed
    assert (second.served_model, second.input_tokens, second.output_tokens) == (CLAUDE, 12, 6)
    assert second.streamed and second.status_code == 200


# --- Passed through to an Anthropic upstream ------------------------------------------------


def test_an_anthropic_upstream_receives_the_clients_request_as_it_is(gateway, client_key, upstream):
    request = {
        "model": CLAUDE,
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Hello"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
        "tools": [WEATHER, {"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 200},
        "top_k": 3,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
    }
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json=request,
        headers={
            "x-api-key": client_key.raw_key,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    sent = _sent(upstream, "claude-haiku")
    expected = {**request, "model": "claude-haiku"}
    # The gateway writes JSON compactly; keys, values and their order are the client's.
    compact = json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert sent["raw"] == compact, "only the model id is replaced"
    assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent["headers"]["x-api-key"] == "sk-anthropic-secret-0001"
    # ... and its answer comes back as the upstream sent it.
    assert response.content == json.dumps(upstream._message(sent["body"])).encode()
    assert response.headers["x-gateway-provider"] == "anthropic"


def test_anthropic_upstream_through_the_sdk(claude, upstream):
    message = claude.messages.create(model=CLAUDE, max_tokens=100, messages=USER)
    assert message.id == "msg_fake" and message.content[0].text == TEXT
    assert message.usage.input_tokens == 12 and message.usage.output_tokens == 6
    assert _sent(upstream, "claude-haiku")["body"] == {
        "max_tokens": 100,
        "messages": USER,
        "model": "claude-haiku",
    }


def test_anthropic_upstream_stream_passes_through(gateway, client_key, upstream, claude):
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=USER) as stream:
        assert list(stream.text_stream) == WORDS
        assert stream.get_final_message().usage.output_tokens == 6
    upstream.reset()
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json={"model": CLAUDE, "max_tokens": 10, "messages": USER, "stream": True},
        headers={"x-api-key": client_key.raw_key},
        timeout=30,
    ) as response:
        received = response.read()
    events = received.decode().strip().split("\n\n")
    assert events[0].startswith("event: message_start\ndata: ")
    assert json.loads(events[0].split("data: ", 1)[1])["message"]["id"] == "msg_fake"
    assert events[-1] == 'event: message_stop\ndata: {"type": "message_stop"}'
    assert len(events) == 5 + len(WORDS)


def test_a_request_only_anthropic_can_serve_skips_other_candidates(claude, upstream):
    document = {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "text", "media_type": "text/plain", "data": "d"},
            },
            {"type": "text", "text": "Summarise."},
        ],
    }
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=MODEL, max_tokens=100, messages=[document])
    assert "messages.0.content.0: a 'document' block" in error.value.message
    assert "only be sent to Anthropic models" in error.value.message
    assert upstream.requests == []
    message = claude.messages.create(
        model=MODEL, max_tokens=100, messages=[document], extra_body={"models": [MODEL, CLAUDE]}
    )
    assert message.model == "claude-haiku"


# --- count_tokens -----------------------------------------------------------------------------


def test_count_tokens(claude, upstream):
    short = claude.messages.count_tokens(model=MODEL, messages=USER)
    long = claude.messages.count_tokens(
        model=MODEL, system="x" * 400, messages=USER, tools=[WEATHER]
    )
    assert short.input_tokens > 0
    assert long.input_tokens >= short.input_tokens + 100
    assert upstream.requests == [], "an estimate: nothing goes upstream"


def test_count_tokens_checks_the_model_and_key(gateway, make_key, claude):
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="alpha/nope", messages=USER)
    limited = make_key(name="limited", allowed_models=[CLAUDE])
    other = anthropic.Anthropic(base_url=gateway.url, api_key=limited.raw_key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        other.messages.count_tokens(model=MODEL, messages=USER)
    assert other.messages.count_tokens(model=CLAUDE, messages=USER).input_tokens > 0
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.url, api_key="wrong", max_retries=0
        ).messages.count_tokens(model=MODEL, messages=USER)


# --- Errors -----------------------------------------------------------------------------------


def test_bearer_auth_and_typed_errors(gateway, client_key, claude, upstream):
    bearer = anthropic.Anthropic(base_url=gateway.url, auth_token=client_key.raw_key, max_retries=0)
    assert bearer.messages.create(model=MODEL, max_tokens=5, messages=USER).content
    with pytest.raises(anthropic.AuthenticationError) as error:
        anthropic.Anthropic(
            base_url=gateway.url, api_key="sk-wrong", max_retries=0
        ).messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert error.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=MODEL, max_tokens=0, messages=USER)
    assert error.value.body["type"] == "error"
    assert error.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as error:
        claude.messages.create(model="alpha/unknown", max_tokens=5, messages=USER)
    assert error.value.body["error"]["type"] == "not_found_error"
    for name in ("llama-3.1-8b", "meta/llama-3.1-8b"):
        upstream.script(name, *[Action("status", status=429, headers={"Retry-After": "7"})] * 5)
    with pytest.raises(anthropic.RateLimitError) as error:
        claude.messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert error.value.body["error"]["type"] == "rate_limit_error"
    assert error.value.response.headers["retry-after"] == "7"


def test_an_upstream_refusal_is_an_anthropic_error(claude, upstream):
    upstream.script("llama-3.1-8b", Action("status", status=400, message="context too long"))
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert error.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "context too long",
    }
    upstream.script("claude-haiku", Action("status", status=400, message="bad block"))
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
    assert error.value.body["error"]["message"] == "bad block"


def test_no_healthy_upstream_is_overloaded(claude, upstream, gateway_settings):
    gateway_settings.GATEWAY_RETRIES_PER_CANDIDATE = 0
    upstream.script("claude-haiku", *[Action("status", status=500)] * 4)
    with pytest.raises(anthropic.InternalServerError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=5, messages=USER)
    assert error.value.status_code == 502
    assert error.value.body["error"]["type"] == "api_error"


@pytest.mark.parametrize("model", ["llama-3.1-8b", "claude-haiku"])
def test_death_mid_stream_is_an_error_event(claude, upstream, gateway_settings, model):
    gateway_settings.CREDENTIAL_FAILURE_THRESHOLD = 5
    upstream.script(model, Action("die_mid_stream"))
    catalog_id = MODEL if model == "llama-3.1-8b" else CLAUDE
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as error,
        claude.messages.stream(model=catalog_id, max_tokens=100, messages=USER) as stream,
    ):
        for event in stream:
            received.append(event.type)
    assert received and received[0] == "message_start"
    assert error.value.body["type"] == "error"
    assert error.value.body["error"]["type"] == "api_error"
    assert "stream" in error.value.body["error"]["message"]
    [row] = metrics_rows(1)
    assert row.status_code == 502 and row.error_type == "upstream_stream_error"


def test_get_is_a_405_in_anthropics_shape(gateway, client_key):
    response = httpx.get(
        f"{gateway.url}/v1/messages", headers={"x-api-key": client_key.raw_key}, timeout=30
    )
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_the_readmes_anthropic_sdk_snippet_runs(gateway, client_key, upstream):
    [code] = re.findall(r"<!-- anthropic-sdk -->\s*```python\n(.*?)```", README.read_text(), re.S)
    code = code.replace("http://127.0.0.1:8000", gateway.url).replace(
        "my-llm/llama-3.1-8b-instruct", MODEL
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "MODELHUB_KEY": client_key.raw_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{TEXT}\n{TEXT}")
    assert "input_tokens=10" in result.stdout


# --- Estimates and budget bounds --------------------------------------------------------------


def test_estimates_and_budget_bounds_count_what_the_upstream_receives():
    """The chat body a Messages request becomes is what the token estimate and a budget's
    bounds read, also when an Anthropic upstream gets the request as it is: the system
    prompt, tool definitions and blocks only Anthropic reads all count."""
    pdf = "A" * 8000
    request = {
        "model": CLAUDE,
        "max_tokens": 700,
        "system": "s" * 4000,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                    {"type": "text", "text": "t" * 400},
                ],
            }
        ],
        "tools": [WEATHER],
    }
    dialect = MessagesDialect()
    body = parse_body(json.dumps(request).encode(), CHAT, dialect)
    claude_model = Model(provider=Provider(slug="a", api_format=ApiFormat.ANTHROPIC))
    input_tokens, output_tokens = estimate_tokens(body, CHAT)
    assert input_tokens >= (4000 + 400) // 4
    assert output_tokens == 700
    assert prompt_bound(body, claude_model) >= 4000 + 8000 + 400 + len(json.dumps(WEATHER))
    assert output_bound(body, CHAT, input_tokens, claude_model) == 700
    assert dialect.untranslatable is not None


def test_a_budget_counts_what_a_passed_through_message_cost(gateway, make_key):
    key = make_key(name="thrifty", budget_amount=Decimal("0.00002"), budget_period="month")
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key.raw_key, max_retries=0)
    # 12 input tokens at 0.000001 USD and 6 output tokens at 0.000002: 0.000024 USD.
    assert claude.messages.create(model=CLAUDE, max_tokens=100, messages=USER).content
    with pytest.raises(anthropic.RateLimitError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=100, messages=USER)
    assert error.value.body["error"]["type"] == "rate_limit_error"
    assert "budget" in error.value.body["error"]["message"]
    assert error.value.response.headers["retry-after"]


def test_tool_result_images_follow_as_a_user_message_and_thinking_is_left_out():
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/chart.png"}}
    chat, untranslatable = messages_chat_body(
        {
            "model": MODEL,
            "max_tokens": 10,
            "tool_choice": {"type": "none"},
            "messages": [
                {"role": "user", "content": "Plot it."},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                        {"type": "text", "text": "Plotting."},
                        {"type": "tool_use", "id": "t1", "name": "plot", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "done"}, image],
                        }
                    ],
                },
            ],
        }
    )
    assert untranslatable is None
    assert chat["tool_choice"] == "none"
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Plotting.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "plot", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "done"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x.test/chart.png"}}],
        },
    ]
