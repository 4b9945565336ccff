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
