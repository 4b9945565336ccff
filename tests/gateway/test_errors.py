"""Every error class in OpenAI's shape, so the SDK raises its typed exceptions."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from modelhub.models import ClientKey
from modelhub.services import client_key_revoke
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]


def _error_body(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_missing_key_is_401(gateway):
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", json={"model": "x", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert _error_body(response)["code"] == "missing_api_key"


def test_unknown_key_is_401(gateway):
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="mh-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as error:
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.code == "invalid_api_key"


def test_expired_key_is_401(gateway, make_key):
    issued = make_key()
    ClientKey.objects.filter(pk=issued.client_key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as error:
        sdk.models.list()
    assert error.value.code == "expired_api_key"


def test_revocation_takes_effect_within_the_cache_bound(client, client_key, gateway_settings):
    assert client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    client_key_revoke(client_key=client_key.client_key)
    time.sleep(gateway_settings.GATEWAY_KEY_CACHE_SECONDS + 0.1)
    with pytest.raises(openai.AuthenticationError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.code == "revoked_api_key"


def test_model_not_allowed_for_the_key_is_403(gateway, make_key):
    issued = make_key(allowed_models=["anthropic/*"])
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as error:
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.code == "model_not_allowed"
    assert sdk.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="nobody/nothing", messages=MESSAGES)
    assert error.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "alpha/llama-3.1-8b"}', "messages"),
        (b'{"model": "alpha/llama-3.1-8b", "messages": "hello"}', "messages"),
        (b'{"model": "alpha/llama-3.1-8b", "messages": [{"content": "x"}]}', "messages[0]"),
        (
            b'{"model": "alpha/llama-3.1-8b", "messages": [{"role": "user"}], "stream": "yes"}',
            "stream",
        ),
        (b'{"model": "a", "messages": [{"role": "user"}], "models": "b"}', "models"),
    ],
)
def test_malformed_requests_are_400(gateway, client_key, body, param):
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={
            "Authorization": f"Bearer {client_key.raw_key}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    error = _error_body(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_missing_prompt_and_input_are_400(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="alpha/llama-3.1-8b", prompt=None)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="alpha/embed-small", input=None)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_upstream_client_errors_return_to_the_caller_without_fallback(client, upstream, status):
    upstream.script("llama-3.1-8b", Action("status", status=status, message="bad things"))
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == status
    assert "bad things" in error.value.message
    assert not upstream.requests_for("meta/llama-3.1-8b")


def test_wrong_method_is_405(gateway, client_key):
    response = httpx.get(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
    )
    assert response.status_code == 405
    assert _error_body(response)["code"] == "method_not_allowed"


def test_unknown_path_is_an_openai_shaped_404(gateway, client_key):
    response = httpx.post(
        f"{gateway.url}/v1/no/such/endpoint",
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
        json={},
    )
    assert response.status_code == 404
    body = _error_body(response)
    assert body["message"] == "Invalid URL (POST /v1/no/such/endpoint)"
    assert body["type"] == "invalid_request_error"
