"""Streams under faults: client disconnects, upstream deaths, fallback before a byte."""

from __future__ import annotations

import httpx
import openai
import pytest

from modelhub.models import ProviderCredential
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]


def test_client_disconnect_cancels_the_upstream_request(gateway, client_key, upstream):
    upstream.script("llama-3.1-8b", Action("slow_stream", delay=0.3))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
        json={"model": "alpha/llama-3.1-8b", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    # Hanging up closes the gateway's upstream connection, which the upstream notices.
    wait_for(lambda: upstream.disconnects == ["llama-3.1-8b"])
    [row] = metrics_rows(1)
    assert row.status_code == 499 and row.error_type == "client_disconnected"


def test_upstream_death_mid_stream_ends_with_an_error_event(
    client, upstream, catalog, gateway_settings
):
    gateway_settings.CREDENTIAL_FAILURE_THRESHOLD = 5
    upstream.script("llama-3.1-8b", Action("die_mid_stream"))
    stream = client.chat.completions.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as error:
        for chunk in stream:
            received.append(chunk)
    assert received, "chunks sent before the failure reach the client"
    assert "stream" in error.value.message
    [row] = metrics_rows(1)
    assert row.status_code == 502 and row.error_type == "upstream_stream_error"
    assert row.served_model == "alpha/llama-3.1-8b"
    wait_for(
        lambda: (
            ProviderCredential.objects.get(
                pk=catalog["credentials"]["alpha"].pk
            ).consecutive_failures
            == 1
        )
    )
    # Nothing was sent elsewhere: the stream had started, so there is no fallback.
    assert not upstream.requests_for("meta/llama-3.1-8b")


def test_stream_that_sent_no_byte_falls_back(client, upstream):
    upstream.script("llama-3.1-8b", Action("status", status=503), Action("status", status=503))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "Hello from the fake upstream"


def test_anthropic_stream_death_is_reported(client, upstream):
    upstream.script("claude-haiku", Action("die_mid_stream"))
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="anthropic/claude-haiku", messages=MESSAGES, stream=True
            )
        )
    [row] = metrics_rows(1)
    assert row.status_code == 502
