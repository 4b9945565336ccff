"""OpenAI's Responses API on the gateway (``/v1/responses``), driven by the real OpenAI SDK
against the fake upstream's OpenAI-compatible and Anthropic endpoints."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from modelhub.models import StoredResponse
from modelhub.services import client_key_create
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import TOOL_ARGUMENTS, WORDS, Action

pytestmark = pytest.mark.usefixtures("catalog")

TEXT = "".join(WORDS)
# (model asked for, the name the upstream sees, the upstream path)
UPSTREAMS = {
    "openai": ("alpha/llama-3.1-8b", "llama-3.1-8b", "/openai/v1/chat/completions"),
    "anthropic": ("anthropic/claude-haiku", "claude-haiku", "/anthropic/v1/messages"),
}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
EVENTS = TypeAdapter(ResponseStreamEvent)


def stream_events(gateway, raw_key: str, body: dict) -> list[dict]:
    """The stream's events as sent, each checked against the SDK's types (strictly, unlike
    the SDK's own lenient construction) and framed with its ``event:`` line."""
    events = []
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/responses",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {raw_key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        buffer = ""
        for text in response.iter_text():
            buffer += text
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                lines = dict(line.split(": ", 1) for line in block.split("\n"))
                event = json.loads(lines["data"])
                assert lines["event"] == event["type"]
                EVENTS.validate_python(event)
                events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def upstream_messages(upstream, name: str) -> list[dict]:
    return upstream.requests_for(name)[-1]["body"]["messages"]


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_create_answers_a_response_object(client, upstream, kind):
    model, name, path = UPSTREAMS[kind]
    raw = client.responses.with_raw_response.create(
        model=model,
        instructions="Be brief.",
        input="Say hello",
        max_output_tokens=50,
        temperature=0.5,
        metadata={"ticket": "42"},
    )
    response = raw.parse()
    Response.model_validate(raw.http_response.json())

    assert response.id.startswith("resp_")
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == TEXT
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.model == model
    assert response.instructions == "Be brief."
    assert response.max_output_tokens == 50 and response.temperature == 0.5
    assert response.metadata == {"ticket": "42"}
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens > 0
    assert raw.headers["x-gateway-model"] == model

    sent = upstream.requests_for(name)[-1]
    assert sent["path"] == path
    if kind == "openai":
        assert sent["body"]["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ]
        assert sent["body"]["max_completion_tokens"] == 50
        assert "metadata" not in sent["body"]
    else:
        assert sent["body"]["system"] == "Be brief."
        assert sent["body"]["max_tokens"] == 50
    assert sent["body"]["temperature"] == 0.5

    [row] = metrics_rows(1)
    assert row.requested_model == model and row.status_code == 200
    assert (row.input_tokens, row.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert not row.streamed


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_streaming_renders_the_responses_event_sequence(gateway, client_key, upstream, kind):
    model, name, _ = UPSTREAMS[kind]
    events = stream_events(gateway, client_key.raw_key, {"model": model, "input": "Say hello"})

    types = [event["type"] for event in events]
    deltas = types.count("response.output_text.delta")
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    # One delta per upstream chunk, as they arrived.
    assert deltas == len(WORDS)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == TEXT
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"][0]["content"][0]["text"] == TEXT
    assert completed["usage"]["output_tokens"] > 0
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    if kind == "openai":
        body = upstream.requests_for(name)[-1]["body"]
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    [row] = metrics_rows(1)
    assert row.streamed and row.status_code == 200
    assert row.output_tokens == completed["usage"]["output_tokens"]
    assert row.time_to_first_token_ms is not None


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_the_sdk_stream_helper_and_create_stream(client, kind):
    model = UPSTREAMS[kind][0]
    with client.responses.stream(model=model, input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == TEXT
    assert final.output_text == TEXT and final.status == "completed"

    events = list(client.responses.create(model=model, input="Say hello", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == TEXT


def _function_call(response):
    [call] = [item for item in response.output if item.type == "function_call"]
    return call


def _assert_round_trip_reached_the_upstream(upstream, kind: str, name: str, call_id: str):
    messages = upstream_messages(upstream, name)
    if kind == "openai":
        assert messages[0] == {"role": "user", "content": "Weather in Paris?"}
        assert messages[1]["role"] == "assistant"
        [tool_call] = messages[1]["tool_calls"]
        assert tool_call["id"] == call_id
        assert tool_call["function"]["name"] == "get_weather"
        assert json.loads(tool_call["function"]["arguments"]) == TOOL_ARGUMENTS
        assert messages[2] == {"role": "tool", "tool_call_id": call_id, "content": "18 C, sunny"}
    else:
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        [tool_use] = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
        assert tool_use["id"] == call_id and tool_use["input"] == TOOL_ARGUMENTS
        [result] = messages[2]["content"]
        assert result == {
            "type": "tool_result",
            "tool_use_id": call_id,
            "content": "18 C, sunny",
        }


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_a_function_call_round_trip_with_previous_response_id(client, upstream, kind):
    model, name, _ = UPSTREAMS[kind]
    upstream.script(name, Action(kind="tool_call"))
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER_TOOL])
    call = _function_call(first)
    assert call.name == "get_weather" and json.loads(call.arguments) == TOOL_ARGUMENTS
    assert first.tools[0].name == "get_weather"
    tools = upstream.requests_for(name)[-1]["body"]["tools"]
    assert "get_weather" in json.dumps(tools)

    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == TEXT
    assert second.previous_response_id == first.id
    _assert_round_trip_reached_the_upstream(upstream, kind, name, call.call_id)


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_a_stateless_function_call_round_trip(client, upstream, kind):
    model, name, _ = UPSTREAMS[kind]
    upstream.script(name, Action(kind="tool_call"))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.responses.create(
        model=model, input=[question], tools=[WEATHER_TOOL], store=False
    )
    call = _function_call(first)
    assert first.store is False
    assert not StoredResponse.objects.filter(response_id=first.id).exists()

    second = client.responses.create(
        model=model,
        input=[
            question,
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 C, sunny"},
        ],
        tools=[WEATHER_TOOL],
        store=False,
    )
    assert second.output_text == TEXT
    _assert_round_trip_reached_the_upstream(upstream, kind, name, call.call_id)


@pytest.mark.parametrize("kind", UPSTREAMS)
def test_a_streamed_function_call(gateway, client_key, upstream, kind):
    model, name, _ = UPSTREAMS[kind]
    upstream.script(name, Action(kind="tool_call"))
    events = stream_events(
        gateway,
        client_key.raw_key,
        {"model": model, "input": "Weather in Paris?", "tools": [WEATHER_TOOL]},
    )
    types = [event["type"] for event in events]
    assert "response.function_call_arguments.delta" in types
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert json.loads(done["arguments"]) == TOOL_ARGUMENTS
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert added[-1]["item"]["type"] == "function_call"
    assert added[-1]["item"]["name"] == "get_weather"
    output = events[-1]["response"]["output"]
    assert output[-1]["type"] == "function_call"
    assert output[-1]["arguments"] == done["arguments"]
    assert output[-1]["call_id"] == added[-1]["item"]["call_id"]


def test_store_get_input_items_and_delete(client):
    created = client.responses.create(model="alpha/llama-3.1-8b", input="Say hello")

    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == TEXT
    assert fetched.usage.total_tokens == created.usage.total_tokens
    [item] = client.responses.input_items.list(created.id).data
    assert item.type == "message" and item.role == "user"
    assert item.content[0].text == "Say hello"

    raw = client.responses.with_raw_response.delete(created.id)
    assert raw.http_response.json() == {"id": created.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_a_streamed_response_is_stored_when_it_completes(client):
    events = list(client.responses.create(model="alpha/llama-3.1-8b", input="hi", stream=True))
    completed = events[-1].response
    # Stored before the last event went out: readable at once.
    assert client.responses.retrieve(completed.id).output_text == TEXT
    follow_up = client.responses.create(
        model="alpha/llama-3.1-8b", input="And again?", previous_response_id=completed.id
    )
    assert follow_up.output_text == TEXT


def test_store_false_keeps_nothing(client):
    created = client.responses.create(model="alpha/llama-3.1-8b", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(
            model="alpha/llama-3.1-8b", input="more", previous_response_id=created.id
        )
    assert refused.value.body["param"] == "previous_response_id"


def test_another_organizations_response_is_a_404(client, gateway, other_org):
    created = client.responses.create(model="alpha/llama-3.1-8b", input="Say hello")
    stranger = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=client_key_create(organization=other_org, name="other").raw_key,
        max_retries=0,
    )
    for attempt in (
        lambda: stranger.responses.retrieve(created.id),
        lambda: stranger.responses.input_items.list(created.id),
        lambda: stranger.responses.delete(created.id),
        lambda: stranger.responses.create(
            model="alpha/llama-3.1-8b", input="hi", previous_response_id=created.id
        ),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            attempt()
        assert created.id in refused.value.message
    assert StoredResponse.objects.filter(response_id=created.id).exists()
    assert client.responses.retrieve(created.id).id == created.id


def test_previous_response_id_puts_the_conversation_before_the_new_input(client, upstream):
    first = client.responses.create(
        model="alpha/llama-3.1-8b", instructions="Be brief.", input="Say hello"
    )
    client.responses.create(
        model="alpha/llama-3.1-8b",
        instructions="Be kind.",
        input="Once more",
        previous_response_id=first.id,
    )
    # The new instructions replace the earlier ones, which are not carried over.
    assert upstream_messages(upstream, "llama-3.1-8b") == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": TEXT},
        {"role": "user", "content": "Once more"},
    ]


def test_an_answer_cut_at_its_limit_is_incomplete(client, gateway, client_key, upstream):
    upstream.script("llama-3.1-8b", Action(kind="length"))
    response = client.responses.create(
        model="alpha/llama-3.1-8b", input="Say hello", max_output_tokens=5
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"

    upstream.script("llama-3.1-8b", Action(kind="length"))
    events = stream_events(
        gateway, client_key.raw_key, {"model": "alpha/llama-3.1-8b", "input": "Say hello"}
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_text_format_reasoning_and_tool_choice_reach_the_upstream(client, upstream):
    schema = {"type": "object", "properties": {"greeting": {"type": "string"}}}
    response = client.responses.create(
        model="alpha/llama-3.1-8b",
        input="Say hello",
        text={"format": {"type": "json_schema", "name": "hello", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        user="user-7",
    )
    body = upstream.requests_for("llama-3.1-8b")[-1]["body"]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "hello", "schema": schema, "strict": True},
    }
    assert body["reasoning_effort"] == "low"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False and body["user"] == "user-7"
    assert response.text.format.type == "json_schema"
    assert response.reasoning.effort == "low"
    assert response.tool_choice.name == "get_weather"


def test_images_reach_the_upstream_as_image_parts(client, upstream):
    client.responses.create(
        model="alpha/llama-3.1-8b",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            }
        ],
    )
    [message] = upstream_messages(upstream, "llama-3.1-8b")
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}},
    ]


def test_routing_keys_pass_through(client, upstream):
    response = client.responses.with_raw_response.create(
        model="nonexistent/model",
        input="hi",
        extra_body={"models": ["nonexistent/model", "beta/meta/llama-3.1-8b"]},
    )
    assert response.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert "models" not in upstream.requests[-1]["body"]


def test_mid_stream_death_ends_with_an_error_and_a_failed_response(
    client, gateway, client_key, upstream
):
    upstream.script("llama-3.1-8b", Action(kind="die_mid_stream"))
    events = stream_events(
        gateway, client_key.raw_key, {"model": "alpha/llama-3.1-8b", "input": "Say hello"}
    )
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "server_error" and events[-2]["message"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert "response.completed" not in [e["type"] for e in events]
    assert not StoredResponse.objects.filter(response_id=failed["id"]).exists()

    [row] = metrics_rows(1)
    assert row.status_code == 502 and row.error_type == "upstream_stream_error"

    upstream.script("llama-3.1-8b", Action(kind="die_mid_stream"))
    sdk_events = list(client.responses.create(model="alpha/llama-3.1-8b", input="hi", stream=True))
    assert sdk_events[-1].type == "response.failed"


def test_errors_are_in_openais_shape(client):
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.responses.create(model="nobody/nothing", input="hi")
    assert unknown_model.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="alpha/llama-3.1-8b", input="hi", temperature=7)
    assert bad.value.body["param"] == "temperature"


def test_a_response_is_written_through_the_database_threads(client):
    """The row is committed by the gateway's own database thread, not the test's."""
    created = client.responses.create(model="alpha/llama-3.1-8b", input="hi")
    row = wait_for(lambda: StoredResponse.objects.filter(response_id=created.id).first())
    assert row.organization_id is not None and row.client_key_id is not None
    assert row.input_items[0]["content"][0]["text"] == "hi"
    assert row.response["output"][0]["content"][0]["text"] == TEXT


@pytest.mark.parametrize(
    ("parameters", "sent"),
    [([], True), (["temperature", "reasoning", "tools"], True), (["temperature", "tools"], False)],
)
def test_reasoning_effort_goes_to_models_that_take_it(client, upstream, catalog, parameters, sent):
    """The catalog's list of a model's parameters decides; without one the upstream does."""
    model = catalog["models"]["alpha"]
    model.supported_parameters = parameters
    model.save()
    response = client.responses.create(
        model="alpha/llama-3.1-8b", input="Think", reasoning={"effort": "high"}
    )
    body = upstream.requests_for("llama-3.1-8b")[-1]["body"]
    assert ("reasoning_effort" in body) is sent
    assert response.reasoning.effort == "high"
