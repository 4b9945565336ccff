"""Hostile input to ``/v1/*`` and ``/metrics`` gets OpenAI's JSON 4xx, never an HTML 500,
and every answer of the gateway's lean handler carries what the middleware would add."""

from __future__ import annotations

import json
import re
import socket

import anthropic
import httpx
import openai
import pytest

from gateway.errors import InvalidRequest
from gateway.parse import MAX_JSON_DEPTH, parse_body
from gateway.upstreams import CHAT
from modelhub.models import ModelMetric
from tests.support.gateway import metrics_rows

pytestmark = pytest.mark.usefixtures("catalog")

MODEL = "alpha/llama-3.1-8b"
MESSAGES = [{"role": "user", "content": "hi"}]
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def _post(gateway, raw_key: str | None, content: bytes, **headers) -> httpx.Response:
    if raw_key is not None:
        headers["Authorization"] = f"Bearer {raw_key}"
    headers.setdefault("Content-Type", "application/json")
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", content=content, headers=headers, timeout=30
    )


# --- Nesting, NUL bytes and surrogates ------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 5000,
        b'{"model": "x", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        # Parses within Python's limit, but deeper than any real request.
        b'{"model": "x", "messages": [{"role": "user", "content": '
        + b"[" * 900
        + b"]" * 900
        + b"}]}",
    ],
    ids=["brackets", "deep-messages", "deep-content"],
)
def test_deeply_nested_json_is_a_400(gateway, client_key, content):
    error = _error(_post(gateway, client_key.raw_key, content), 400)
    assert error["code"] == "invalid_json"
    assert "nested too deeply" in error["message"]


def _nested(depth: int, text: str = "hi") -> bytes:
    """A chat body whose nesting (the body itself included) is ``depth`` levels."""
    content: object = text
    for _ in range(depth - 3):  # the body, its messages and the message are three
        content = [content]
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("depth", "text", "refused"),
    [
        (MAX_JSON_DEPTH, "hi", False),
        (MAX_JSON_DEPTH + 1, "hi", True),
        # More brackets than the bound, all inside a string: walked, and accepted.
        (4, "[" * (2 * MAX_JSON_DEPTH), False),
        (MAX_JSON_DEPTH + 1, "{" * 10, True),
    ],
    ids=["at-the-bound", "one-past", "brackets-in-text", "one-past-with-text"],
)
def test_the_nesting_bound_is_exact(depth, text, refused):
    raw = _nested(depth, text)
    if refused:
        with pytest.raises(InvalidRequest, match="nested too deeply"):
            parse_body(raw, CHAT)
    else:
        assert parse_body(raw, CHAT)["model"] == MODEL


def test_nesting_of_real_requests_is_served(client):
    """Tool schemas nest a few levels; they are far from the bound."""
    schema: dict = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"inner": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools)
    assert completion.choices


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (
            '{"model": "alpha/llama\\u0000", "messages": [{"role": "user", "content": "hi"}]}',
            "model",
        ),
        ('{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            '{"models": ["alpha/llama-3.1-8b", "x\\u0000y"], '
            '"messages": [{"role": "user", "content": "hi"}]}',
            "models",
        ),
        (
            '{"model": "alpha/llama-3.1-8b", "models": ["\\udfff"], '
            '"messages": [{"role": "user", "content": "hi"}]}',
            "models",
        ),
    ],
    ids=["model-nul", "model-surrogate", "models-nul", "models-surrogate"],
)
def test_nul_and_surrogates_in_model_names_are_a_400(gateway, client_key, payload, param):
    error = _error(_post(gateway, client_key.raw_key, payload.encode()), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert not ModelMetric.objects.exists()


def test_nul_in_model_through_the_sdk(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="a\x00b", messages=MESSAGES)
    assert error.value.status_code == 400
    assert error.value.param == "model"


# --- Provider preferences -----------------------------------------------------------------

PREFERENCE_BODY = '{"model": "alpha/llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("provider", "param", "code", "says"),
    [
        ('"alpha"', "provider", "invalid_value", "must be an object"),
        ("[]", "provider", "invalid_value", "must be an object"),
        ('{"zdr": true}', "provider.zdr", "unknown_parameter", "Unknown key 'provider.zdr'"),
        ('{"Only": ["alpha"]}', "provider.Only", "unknown_parameter", "Unknown key"),
        ('{"only": "alpha"}', "provider.only", "invalid_value", "must be a list"),
        ('{"order": [1, 2]}', "provider.order", "invalid_value", "must be a list"),
        ('{"ignore": [""]}', "provider.ignore", "invalid_value", "must be a list"),
        ('{"ignore": ["al\\u0000pha"]}', "provider.ignore", "invalid_value", "must be a list"),
        ('{"ignore": ["\\ud800"]}', "provider.ignore", "invalid_value", "must be a list"),
        ('{"only": ["' + "x" * 101 + '"]}', "provider.only", "invalid_value", "must be a list"),
        ('{"only": ' + json.dumps(["p"] * 51) + "}", "provider.only", "invalid_value", "at most"),
        ('{"allow_fallbacks": "false"}', "provider.allow_fallbacks", "invalid_value", "true or"),
        ('{"allow_fallbacks": 0}', "provider.allow_fallbacks", "invalid_value", "true or false"),
        ('{"require_parameters": 1}', "provider.require_parameters", "invalid_value", "true"),
        ('{"sort": "fastest"}', "provider.sort", "invalid_value", '"price", "latency"'),
        ('{"sort": {"by": "price"}}', "provider.sort", "invalid_value", "must be one of"),
        ('{"data_collection": true}', "provider.data_collection", "invalid_value", '"deny"'),
        ('{"max_price": 5}', "provider.max_price", "invalid_value", "must be an object"),
        (
            '{"max_price": {"tokens": 1}}',
            "provider.max_price.tokens",
            "unknown_parameter",
            "max_price takes prompt, completion, request, image",
        ),
        ('{"max_price": {"prompt": -1}}', "provider.max_price.prompt", "invalid_value", "zero"),
        ('{"max_price": {"prompt": "cheap"}}', "provider.max_price.prompt", "invalid_value", "USD"),
        ('{"max_price": {"prompt": "NaN"}}', "provider.max_price.prompt", "invalid_value", "USD"),
        # Not JSON (RFC 8259 has no Infinity): refused with the body, before the preference.
        ('{"max_price": {"prompt": Infinity}}', None, "invalid_json", "JSON"),
        ('{"max_price": {"prompt": true}}', "provider.max_price.prompt", "invalid_value", "USD"),
        ('{"max_price": {"image": [1]}}', "provider.max_price.image", "invalid_value", "USD"),
    ],
)
def test_bad_provider_preferences_are_a_400_naming_the_key(
    gateway, client_key, upstream, provider, param, code, says
):
    content = (PREFERENCE_BODY + ', "provider": ' + provider + "}").encode()
    error = _error(_post(gateway, client_key.raw_key, content), 400)
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )
    assert says in error["message"]
    assert upstream.requests == []
    assert not ModelMetric.objects.exists()


def test_an_unknown_key_of_a_huge_name_is_named_in_part(gateway, client_key):
    content = (PREFERENCE_BODY + ', "provider": {"' + "k" * 100_000 + '": 1}}').encode()
    error = _error(_post(gateway, client_key.raw_key, content), 400)
    assert error["param"] == "provider." + "k" * 100
    assert len(error["message"]) < 500


@pytest.mark.parametrize(
    "provider",
    [
        "null",
        "{}",
        '{"only": null, "sort": null, "max_price": {"prompt": null}}',
        '{"only": [], "ignore": []}',
        '{"max_price": {"prompt": "1", "completion": 2.0, "request": 0, "image": 1e3}}',
    ],
)
def test_empty_or_null_preferences_change_nothing(gateway, client_key, upstream, provider):
    content = (PREFERENCE_BODY + ', "provider": ' + provider + "}").encode()
    response = _post(gateway, client_key.raw_key, content)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "alpha"


# --- Body size ----------------------------------------------------------------------------


def test_a_5_mb_prompt_is_served(client, upstream):
    """Beyond Django's 2.5 MiB form limit, well within the gateway's own."""
    prompt = "word " * (1024 * 1024)  # 5 MiB
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}]
    )
    assert completion.choices[0].message.content
    assert upstream.requests_for("llama-3.1-8b")[-1]["body"]["messages"][0]["content"] == prompt


def test_a_body_over_the_limit_is_a_json_413(client, gateway_settings):
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 4096
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert error.value.status_code == 413
    assert error.value.code == "request_too_large"
    assert error.value.body["type"] == "invalid_request_error"
    assert error.value.response.headers["x-request-id"]


def test_a_chunked_body_over_the_limit_is_a_json_413(gateway, client_key, gateway_settings):
    """No Content-Length to check first: the limit holds while reading."""
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 4096

    def chunks():
        yield b'{"model": "alpha/llama-3.1-8b", "messages": [{"role": "user", "content": "'
        for _ in range(8):
            yield b"x" * 1024
        yield b'"}]}'

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
    )
    assert "content-length" not in response.request.headers
    assert _error(response, 413)["code"] == "request_too_large"


def test_a_chunked_body_within_the_limit_is_served(gateway, client_key, gateway_settings):
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 4096

    def chunks():
        yield b'{"model": "alpha/llama-3.1-8b", '
        yield b'"messages": [{"role": "user", "content": "hi"}]}'

    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
    )
    assert response.status_code == 200, response.text


def test_a_declared_length_over_the_limit_is_refused_before_reading(gateway, gateway_settings):
    """The 413 comes from Content-Length alone: the body is never sent."""
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 1000
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: (\d+)\r\n", head.lower() + b"\r\n")
        assert length is not None, head
        while len(body) < int(length.group(1)):
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"x-request-id: " in head.lower()
    assert json.loads(body)["error"]["code"] == "request_too_large"


# --- Host, security headers and request ids ----------------------------------------------


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/metrics"])
def test_a_host_not_allowed_is_a_json_400(gateway, client_key, path):
    response = httpx.request(
        "POST" if "chat" in path else "GET",
        f"{gateway.url}{path}",
        headers={"Host": "evil.example", "Authorization": f"Bearer {client_key.raw_key}"},
        json={"model": MODEL, "messages": MESSAGES},
    )
    error = _error(response, 400)
    assert error["code"] == "invalid_host"
    assert response.headers["x-request-id"]
    assert not ModelMetric.objects.exists()


def _answers(gateway, client_key, gateway_settings) -> dict[str, httpx.Response]:
    auth = {"Authorization": f"Bearer {client_key.raw_key}"}
    chat = f"{gateway.url}/v1/chat/completions"
    answers = {
        "200": httpx.post(chat, json={"model": MODEL, "messages": MESSAGES}, headers=auth),
        "200-models": httpx.get(f"{gateway.url}/v1/models", headers=auth),
        "401": httpx.post(chat, json={"model": MODEL, "messages": MESSAGES}),
        "404": httpx.get(f"{gateway.url}/v1/nowhere", headers=auth),
        "metrics": httpx.get(f"{gateway.url}/metrics"),
    }
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 100
    answers["413"] = httpx.post(
        chat, json={"model": MODEL, "messages": [{"role": "user", "content": "x" * 200}]}
    )
    return answers


def test_security_headers_and_request_id_on_every_answer(gateway, client_key, gateway_settings):
    answers = _answers(gateway, client_key, gateway_settings)
    expected_status = {"200": 200, "200-models": 200, "401": 401, "404": 404, "413": 413}
    for name, response in answers.items():
        assert response.status_code == expected_status.get(name, 200), name
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header)
        assert response.headers["x-request-id"], name
    ids = [response.headers["x-request-id"] for response in answers.values()]
    assert len(set(ids)) == len(ids)


def test_the_request_id_is_the_metric_rows(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    request_id = raw.headers["x-request-id"]
    assert re.fullmatch(r"gen-[0-9a-f]{32}", request_id)
    (row,) = metrics_rows(1)
    assert row.request_id == request_id


def test_a_well_formed_incoming_request_id_is_kept(client):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, extra_headers={"X-Request-Id": "lb-1234.abcd:ef_9"}
    )
    assert raw.headers["x-request-id"] == "lb-1234.abcd:ef_9"
    (row,) = metrics_rows(1)
    assert row.request_id == "lb-1234.abcd:ef_9"


@pytest.mark.parametrize("incoming", ["x" * 65, "has space", "semi;colon", "<script>"])
def test_a_malformed_incoming_request_id_is_replaced(gateway, client_key, incoming):
    response = httpx.get(
        f"{gateway.url}/v1/models",
        headers={"Authorization": f"Bearer {client_key.raw_key}", "X-Request-Id": incoming},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("gen-")


@pytest.mark.parametrize(
    "path", ["/v1/models/%00", "/v1/models/%ED%A0%80", "/v1/%FF%FE", "/v1/models/a%00b/c"]
)
def test_hostile_paths_are_json_answers(gateway, client_key, path):
    response = httpx.get(
        f"{gateway.url}{path}", headers={"Authorization": f"Bearer {client_key.raw_key}"}
    )
    assert response.status_code in (400, 404), response.text[:300]
    assert response.json()["error"]["message"]
    assert response.headers["x-request-id"]


def test_security_headers_match_the_rest_of_the_site(gateway):
    """The same values as the middleware stack sends, whatever the settings say."""
    site = httpx.get(f"{gateway.url}/catalog/providers")
    gateway_answer = httpx.get(f"{gateway.url}/metrics")
    for header in SECURITY_HEADERS:
        assert gateway_answer.headers.get(header) == site.headers.get(header), header


# --- The Responses API ------------------------------------------------------------------

HI = "hi"


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": HI, "frobnicate": True}, "frobnicate", "Unrecognized request argument"),
        ({"input": HI, "conversation": "conv_1"}, "conversation", "not supported"),
        ({"input": HI, "tools": [{"type": "web_search"}]}, "tools[0].type", "'web_search'"),
        ({"input": HI, "tools": [{"type": "function"}]}, "tools[0].name", "name"),
        ({"input": HI, "tools": "get_weather"}, "tools", "list"),
        ({"input": 42}, "input", "string or a non-empty list"),
        ({"input": []}, "input", "non-empty list"),
        ({}, "input", "'input'"),
        ({"input": ["hi"]}, "input[0]", "object"),
        ({"input": [{"role": "wizard", "content": HI}]}, "input[0].role", "role"),
        ({"input": [{"role": "user", "content": 7}]}, "input[0].content", "content"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
            "'input_file'",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
            "image_url",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "not supported"),
        (
            {"input": [{"type": "function_call_output", "output": "18 C"}]},
            "input[0].call_id",
            "call_id",
        ),
        ({"input": HI, "instructions": ["be brief"]}, "instructions", "string"),
        ({"input": HI, "text": {"format": {"type": "yaml"}}}, "text.format.type", "json_schema"),
        (
            {"input": HI, "text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "schema",
        ),
        ({"input": HI, "max_output_tokens": 0}, "max_output_tokens", "positive"),
        ({"input": HI, "max_output_tokens": "10"}, "max_output_tokens", "positive"),
        ({"input": HI, "max_output_tokens": True}, "max_output_tokens", "positive"),
        ({"input": HI, "temperature": "hot"}, "temperature", "number"),
        ({"input": HI, "top_p": 1.5}, "top_p", "number"),
        ({"input": HI, "reasoning": {"effort": "extreme"}}, "reasoning.effort", "effort"),
        ({"input": HI, "metadata": {str(i): "v" for i in range(17)}}, "metadata", "16"),
        ({"input": HI, "tool_choice": "sometimes"}, "tool_choice", "tool_choice"),
        ({"input": HI, "store": "yes"}, "store", "boolean"),
        ({"input": HI, "stream": "yes"}, "stream", "boolean"),
        ({"input": HI, "background": True}, "background", "Background"),
        ({"input": HI, "truncation": "auto"}, "truncation", "truncation"),
        ({"input": HI, "previous_response_id": 5}, "previous_response_id", "response id"),
        ({"input": HI, "previous_response_id": "resp_\x00"}, "previous_response_id", "response id"),
        ({"input": "a\x00b"}, "input", "store"),
        ({"input": "a\ud800b"}, "input", "store"),
    ],
)
def test_bad_responses_requests_are_a_400_naming_the_param(gateway, client_key, body, param, words):
    response = httpx.post(
        f"{gateway.url}/v1/responses",
        # json.dumps escapes the lone surrogate, as a client's encoder would.
        content=json.dumps({"model": MODEL, **body}).encode(),
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
        timeout=30,
    )
    error = _error(response, 400)
    assert error["param"] == param
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    assert not ModelMetric.objects.exists()


def test_responses_without_a_model_or_with_a_bad_body(gateway, client_key):
    for content, param in ((b'{"input": "hi"}', "model"), (b"[1]", None), (b"{", None)):
        response = httpx.post(
            f"{gateway.url}/v1/responses",
            content=content,
            headers={"Authorization": f"Bearer {client_key.raw_key}"},
        )
        assert _error(response, 400)["param"] == param


def test_text_that_cannot_be_stored_is_served_when_not_stored(client, upstream):
    response = client.responses.create(model=MODEL, input="a\x00b", store=False)
    assert response.output_text
    assert upstream.requests_for("llama-3.1-8b")[-1]["body"]["messages"][0]["content"] == "a\x00b"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/responses", 405),
        ("PUT", "/v1/responses/resp_1", 405),
        ("POST", "/v1/responses/resp_1/input_items", 405),
        ("GET", "/v1/responses/resp_1", 404),
        ("GET", "/v1/responses/%00", 404),
        ("GET", "/v1/responses/resp_1/input_items?limit=0", 400),
        ("GET", "/v1/responses/resp_1/input_items?order=sideways", 400),
        ("GET", "/v1/responses/resp_1?stream=true", 400),
    ],
)
def test_responses_paths_answer_in_json(gateway, client_key, method, path, status):
    response = httpx.request(
        method, f"{gateway.url}{path}", headers={"Authorization": f"Bearer {client_key.raw_key}"}
    )
    assert _error(response, status)["message"]


# --- Anthropic's Messages API -------------------------------------------------------------

USER = [{"role": "user", "content": "hi"}]


def _message_body(**fields) -> bytes:
    body = {"model": MODEL, "max_tokens": 16, "messages": USER, **fields}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def _block(block: dict, role: str = "user") -> bytes:
    return _message_body(messages=[{"role": role, "content": [block]}])


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'"hi"',
        b'{"model": "x", "max_tokens": 5, "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        _message_body(model=None),
        b'{"model": "alpha/llama\\u0000", "max_tokens": 5, "messages": [{"role": "user", '
        b'"content": "hi"}]}',
        _message_body(model=5),
        _message_body(max_tokens=None),
        _message_body(max_tokens=0),
        _message_body(max_tokens="100"),
        _message_body(max_tokens=True),
        _message_body(max_tokens=1.5),
        _message_body(messages=None),
        _message_body(messages=[]),
        _message_body(messages="hi"),
        _message_body(messages=[1]),
        _message_body(messages=[{"role": "system", "content": "x"}]),
        _message_body(messages=[{"role": "user"}]),
        _message_body(messages=[{"role": "user", "content": 5}]),
        _message_body(messages=[{"role": "user", "content": [1]}]),
        _block({"text": "no type"}),
        _block({"type": "text", "text": 5}),
        _block({"type": "image"}),
        _block({"type": "image", "source": {"type": "base64", "media_type": "image/png"}}),
        _block({"type": "image", "source": {"type": "url"}}),
        _block({"type": "tool_use", "name": "f", "input": {}}, role="assistant"),
        _block({"type": "tool_use", "id": "t", "name": "f", "input": "{}"}, role="assistant"),
        _block({"type": "tool_result", "content": "no id"}),
        _block({"type": "tool_result", "tool_use_id": "t", "content": 5}),
        _block({"type": "tool_result", "tool_use_id": "t", "content": [7]}),
        _message_body(system=5),
        _message_body(system=[{"type": "image"}]),
        _message_body(tools="f"),
        _message_body(tools=[{"name": "f"}]),
        _message_body(tools=[{"input_schema": {}}]),
        _message_body(tool_choice="auto"),
        _message_body(tool_choice={"type": "tool"}),
        _message_body(tool_choice={"type": "sometimes"}),
        _message_body(stop_sequences="END"),
        _message_body(stop_sequences=[1]),
        _message_body(temperature="hot"),
        _message_body(metadata="x"),
        _message_body(stream="yes"),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "deep",
        "no-model",
        "model-nul",
        "model-number",
        "no-max-tokens",
        "max-tokens-zero",
        "max-tokens-string",
        "max-tokens-bool",
        "max-tokens-float",
        "no-messages",
        "empty-messages",
        "messages-string",
        "message-number",
        "system-role",
        "no-content",
        "content-number",
        "block-number",
        "block-without-type",
        "text-not-string",
        "image-without-source",
        "base64-without-data",
        "url-without-url",
        "tool-use-without-id",
        "tool-use-input-string",
        "tool-result-without-id",
        "tool-result-content-number",
        "tool-result-block-number",
        "system-number",
        "system-image",
        "tools-string",
        "tool-without-schema",
        "tool-without-name",
        "tool-choice-string",
        "tool-choice-without-name",
        "tool-choice-unknown",
        "stop-string",
        "stop-number",
        "temperature-string",
        "metadata-string",
        "stream-string",
    ],
)
def test_bad_messages_requests_are_anthropic_400s(gateway, client_key, content):
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=content,
        headers={"x-api-key": client_key.raw_key, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    assert not ModelMetric.objects.exists()


def test_a_messages_body_over_the_limit_is_a_413_the_anthropic_sdk_types(
    gateway, client_key, gateway_settings
):
    gateway_settings.GATEWAY_MAX_BODY_BYTES = 4096
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=client_key.raw_key, max_retries=0)
    with pytest.raises(anthropic.ContentTooLargeError) as error:
        claude.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert error.value.body["type"] == "error"
    assert error.value.body["error"]["type"] == "request_too_large"
    assert error.value.response.headers["x-request-id"]


def test_a_messages_request_without_a_key_is_an_anthropic_401(gateway):
    response = httpx.post(f"{gateway.url}/v1/messages", content=_message_body(), timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
