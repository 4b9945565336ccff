"""The gateway behaves as its OpenAPI operations say: the fields, headers and error shape
documented in gateway/openapi.py are what a live gateway takes and answers."""

from __future__ import annotations

import httpx
import pytest
from drf_spectacular.generators import SchemaGenerator

from modelhub.models import Provider

pytestmark = pytest.mark.usefixtures("catalog")

PREFERENCES = {
    "order": ["beta", "alpha"],
    "only": ["alpha", "beta"],
    "ignore": ["anthropic"],
    "allow_fallbacks": True,
    "sort": "price",
    "max_price": {"prompt": "1.00", "completion": "2.00"},
    "data_collection": "deny",
    "require_parameters": False,
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_documented_gateway_fields_are_accepted_and_kept_from_the_upstream(
    gateway, client_key, upstream, schema, catalog
):
    # data_collection "deny" needs a known policy of neither training on nor keeping prompts.
    Provider.objects.filter(slug__in=["alpha", "beta"]).update(
        may_train_on_data=False, may_log_prompts=False
    )
    documented = schema["components"]["schemas"]["ProviderPreferencesRequest"]["properties"]
    assert set(PREFERENCES) == set(documented)
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {client_key.raw_key}"},
        json={
            "model": "alpha/llama-3.1-8b",
            "models": ["beta/meta/llama-3.1-8b"],
            "provider": PREFERENCES,
            "messages": [{"role": "user", "content": "Hi"}],
        },
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]["body"]
    assert "provider" not in sent and "models" not in sent

    headers = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["headers"]
    missing = [name for name in headers if name.lower() not in response.headers]
    assert missing == []


def test_errors_have_the_documented_shape(gateway, client_key, schema):
    components = schema["components"]["schemas"]
    detail = set(components["GatewayErrorDetail"]["properties"])
    for headers, expected in (
        ({"Authorization": f"Bearer {client_key.raw_key}"}, 404),
        ({"Authorization": "Bearer mh-wrong"}, 401),
    ):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers=headers,
            json={"model": "nobody/nothing", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert response.status_code == expected
        body = response.json()
        assert set(body) == set(components["GatewayError"]["properties"])
        assert set(body["error"]) == detail


def test_documented_responses_fields_are_accepted_and_answered(gateway, client_key, schema):
    components = schema["components"]["schemas"]
    request_fields = set(components["CreateResponseRequest"]["properties"])
    values = {
        "model": "alpha/llama-3.1-8b",
        "models": ["beta/meta/llama-3.1-8b"],
        "provider": {"sort": "price"},
        "user": "user-1",
        "input": "Hi",
        "instructions": "Be brief.",
        "store": True,
        "stream": False,
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 16,
        "temperature": 0.2,
        "top_p": 0.9,
        "reasoning": {"effort": "low"},
        "metadata": {"k": "v"},
    }
    assert request_fields == set(values) | {"previous_response_id"}
    headers = {"Authorization": f"Bearer {client_key.raw_key}"}
    first = httpx.post(f"{gateway.url}/v1/responses", headers=headers, json=values)
    assert first.status_code == 200, first.text
    values["previous_response_id"] = first.json()["id"]
    response = httpx.post(f"{gateway.url}/v1/responses", headers=headers, json=values)
    assert response.status_code == 200, response.text

    answered = set(response.json())
    assert set(components["ResponseObject"]["properties"]) <= answered
    documented = schema["paths"]["/v1/responses"]["post"]["responses"]["200"]["headers"]
    assert [name for name in documented if name.lower() not in response.headers] == []
    deleted = httpx.delete(
        f"{gateway.url}/v1/responses/{values['previous_response_id']}", headers=headers
    )
    assert set(deleted.json()) == set(components["ResponseDeleted"]["properties"])
