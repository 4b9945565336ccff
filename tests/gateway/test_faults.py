"""Upstream faults against deadlines: silent upstreams, resets, 200s that are no answer.

The timeouts are small so each test takes about a second: an attempt must show its first
byte within 0.3 s and a request must be done within 1.5 s (the defaults are 20 s and 45
s). Every call goes through the real OpenAI SDK.
"""

from __future__ import annotations

import time

import openai
import pytest

from modelhub.models import HealthStatus, ProviderCredential
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
ALPHA, BETA = "llama-3.1-8b", "meta/llama-3.1-8b"
FIRST_BYTE, DEADLINE = 0.3, 1.5
# Room for the SDK, the key lookup and a loaded machine around the gateway's own clock.
SLACK = 0.5


@pytest.fixture(autouse=True)
def short_deadlines(gateway_settings):
    gateway_settings.GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT = FIRST_BYTE
    gateway_settings.GATEWAY_REQUEST_DEADLINE = DEADLINE
    # Longer than the deadline: a fix that leans on the read timeout would fail here.
    gateway_settings.GATEWAY_UPSTREAM_READ_TIMEOUT = 2.0
    gateway_settings.CREDENTIAL_FAILURE_THRESHOLD = 5
    return gateway_settings


def timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except openai.APIStatusError as error:
        error.elapsed = time.monotonic() - started
        raise


def credential(catalog, slug) -> ProviderCredential:
    return ProviderCredential.objects.get(pk=catalog["credentials"][slug].pk)


# --- Silent upstreams -------------------------------------------------------------------


def test_silent_upstream_falls_back_within_the_deadline(client, upstream, catalog):
    upstream.script(ALPHA, *[Action("stall_headers", delay=5)] * 2)
    raw, elapsed = timed(
        lambda: client.chat.completions.with_raw_response.create(
            model="alpha/llama-3.1-8b", messages=MESSAGES
        )
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream"
    assert elapsed < DEADLINE
    [row] = metrics_rows(1)
    assert row.attempts == 3 and row.fallbacks_used == 1
    wait_for(lambda: credential(catalog, "alpha").consecutive_failures == 2)
    assert "timeout" in credential(catalog, "alpha").last_error
    assert f"sent no response within {FIRST_BYTE:g} s" in credential(catalog, "alpha").last_error


def test_stream_silent_before_its_first_event_falls_back(client, upstream):
    # The status line and headers come at once; the first event never does.
    upstream.script(ALPHA, *[Action("stall_body", delay=5)] * 2)
    raw, elapsed = timed(
        lambda: client.chat.completions.with_raw_response.create(
            model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
        )
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello from the fake upstream"
    assert elapsed < DEADLINE


def test_silent_upstream_without_fallback_is_a_504(client, upstream):
    upstream.script("claude-haiku", *[Action("stall_headers", delay=5)] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        timed(
            lambda: client.chat.completions.create(
                model="anthropic/claude-haiku", messages=MESSAGES
            )
        )
    assert error.value.status_code == 504
    assert error.value.code == "upstream_timeout"
    # Two attempts of the first-byte timeout, not of the read timeout.
    assert error.value.elapsed < 2 * FIRST_BYTE + SLACK


def test_the_deadline_caps_attempts_and_answers_504(client, upstream, short_deadlines):
    # Three attempts of a second each would take three; the deadline cuts at 1.5.
    short_deadlines.GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT = 1.0
    short_deadlines.GATEWAY_RETRIES_PER_CANDIDATE = 2
    upstream.script("claude-haiku", *[Action("stall_headers", delay=5)] * 3)
    with pytest.raises(openai.InternalServerError) as error:
        timed(
            lambda: client.chat.completions.create(
                model="anthropic/claude-haiku", messages=MESSAGES
            )
        )
    assert error.value.status_code == 504
    assert error.value.code == "deadline_exceeded"
    assert error.value.body["type"] == "upstream_error"
    assert "deadline" in error.value.message
    assert DEADLINE - 0.1 < error.value.elapsed < DEADLINE + SLACK
    [row] = metrics_rows(1)
    assert row.status_code == 504 and row.attempts == 2


def test_a_body_that_stops_after_the_headers_is_bounded_by_the_deadline(client, upstream, catalog):
    # The read timeout (2 s) would wait longer; the request's deadline does not.
    upstream.script(ALPHA, *[Action("stall_body", delay=5)] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        timed(lambda: client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES))
    assert error.value.status_code == 504
    assert error.value.elapsed < DEADLINE + SLACK
    # The answer had begun: not the first byte's timeout.
    wait_for(lambda: credential(catalog, "alpha").consecutive_failures >= 1)
    assert "stopped sending its answer" in credential(catalog, "alpha").last_error


def test_the_deadline_does_not_cut_a_stream_that_began(client, upstream):
    # Eight events 0.3 s apart: 2.1 s in all, past the deadline, each gap within the
    # read timeout.
    upstream.script(ALPHA, Action("slow_stream", delay=0.3))
    stream, elapsed = timed(
        lambda: list(
            client.chat.completions.create(
                model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
            )
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from the fake upstream"
    assert elapsed > DEADLINE
    [row] = metrics_rows(1)
    assert row.status_code == 200


# --- Broken connections -----------------------------------------------------------------


def test_connection_reset_falls_back(client, upstream, catalog):
    upstream.script(ALPHA, Action("reset"), Action("reset"))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    wait_for(lambda: credential(catalog, "alpha").consecutive_failures == 2)
    assert credential(catalog, "alpha").last_error.startswith("connection:")


def test_stream_reset_before_its_first_event_falls_back(client, upstream):
    upstream.script(ALPHA, Action("reset"), Action("reset"))
    chunks = list(
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- 200s that are not an answer --------------------------------------------------------

GARBAGE = {
    "empty object": b"{}",
    "list": b"[]",
    "string": b'"ok"',
    "html": b"<html><body>502 Bad Gateway</body></html>",
    "truncated": b'{"id": "chatcmpl-1", "choices": [{"ind',
    "error object": b'{"error": {"message": "overloaded"}}',
}


@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_garbage_200_falls_back_and_is_finally_a_502(client, upstream, catalog, body):
    upstream.script(ALPHA, *[Action("garbage", body=body)] * 2)
    upstream.script(BETA, Action("garbage", body=body))
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502
    assert len(upstream.requests_for(ALPHA)) == 2 and len(upstream.requests_for(BETA)) == 1
    [row] = metrics_rows(1)
    assert row.status_code == 502 and row.cost == 0
    assert row.attempts == 3 and row.fallbacks_used == 1
    assert "completion" in row.error_message or "not JSON" in row.error_message


def test_a_garbage_200_is_a_failed_attempt_before_a_good_fallback(client, upstream, catalog):
    upstream.script(ALPHA, *[Action("garbage", body=b"{}")] * 2)
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert raw.parse().choices[0].message.content == "Hello from the fake upstream"
    wait_for(lambda: credential(catalog, "alpha").consecutive_failures == 2)
    assert credential(catalog, "alpha").last_error.startswith("bad_response:")


def test_embeddings_without_data_are_a_502(client, upstream):
    upstream.script("embed-small", *[Action("garbage", body=b'{"object": "list"}')] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        client.embeddings.create(model="alpha/embed-small", input="hi")
    assert error.value.status_code == 502
    assert "'data'" in error.value.message


def test_an_anthropic_message_without_content_is_a_502(client, upstream):
    body = b'{"type": "message", "role": "assistant", "usage": {"input_tokens": 1}}'
    upstream.script("claude-haiku", *[Action("garbage", body=body)] * 2)
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)
    assert error.value.status_code == 502
    assert "'content'" in error.value.message


def test_a_stream_whose_first_event_is_garbage_falls_back(client, upstream):
    upstream.script(ALPHA, *[Action("garbage_stream", body=b"<html>oops</html>")] * 2)
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello from the fake upstream"


def test_a_garbage_stream_everywhere_is_a_502_before_any_byte(client, upstream):
    upstream.script(ALPHA, *[Action("garbage_stream", body=b"not json")] * 2)
    upstream.script(BETA, Action("garbage_stream", body=b"not json"))
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True)
    assert error.value.status_code == 502


# --- Who failed -------------------------------------------------------------------------


def test_the_failure_row_names_the_failed_provider_and_credential(
    client, upstream, catalog, short_deadlines
):
    short_deadlines.CREDENTIAL_FAILURE_THRESHOLD = 2
    upstream.script(ALPHA, *[Action("status", status=503)] * 2)
    upstream.script(BETA, Action("status", status=503))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    [row] = metrics_rows(1)
    beta = catalog["models"]["beta"]
    assert row.status_code == 502
    assert row.provider_id == beta.provider_id
    assert row.model_id == beta.pk
    assert row.served_model == "beta/meta/llama-3.1-8b"
    assert row.credential_id == catalog["credentials"]["beta"].pk
    # Both credentials' health records what they did.
    wait_for(lambda: credential(catalog, "alpha").health_status == HealthStatus.UNHEALTHY)
    wait_for(lambda: credential(catalog, "beta").consecutive_failures == 1)
    assert credential(catalog, "beta").health_status == HealthStatus.DEGRADED


def test_a_client_error_row_names_the_provider(client, upstream, catalog):
    upstream.script(ALPHA, Action("status", status=400, message="bad temperature"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    [row] = metrics_rows(1)
    assert row.status_code == 400
    assert row.provider_id == catalog["models"]["alpha"].provider_id
    assert row.credential_id == catalog["credentials"]["alpha"].pk
