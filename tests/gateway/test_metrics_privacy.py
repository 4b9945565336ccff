"""``/metrics``: behind ``METRICS_TOKEN`` when it is set, and without tenants' private
provider and model names, whose series would otherwise grow with every model they add."""

from __future__ import annotations

import logging
import re
import secrets

import httpx
import pytest

from gateway import checks
from modelhub.models import Model, Provider
from modelhub.services import provider_credential_create
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
TOKEN = "metrics-" + secrets.token_hex(16)


def test_metrics_need_the_token_when_it_is_set(gateway, gateway_settings):
    gateway_settings.METRICS_TOKEN = TOKEN
    url = f"{gateway.url}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_metrics_token"
        assert "gateway_requests_total" not in response.text
    response = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "gateway_requests_total" in response.text


def test_metrics_are_open_without_a_token(gateway, gateway_settings):
    gateway_settings.METRICS_TOKEN = ""
    assert httpx.get(f"{gateway.url}/metrics").status_code == 200


def test_production_warns_when_the_token_is_unset(settings, caplog):
    settings.DEBUG = False
    settings.METRICS_TOKEN = ""
    settings.SILENCED_SYSTEM_CHECKS = []
    assert [m.id for m in checks.check_metrics_token()] == ["gateway.W001"]
    with caplog.at_level(logging.WARNING, logger="gateway.checks"):
        checks.warn_at_startup()
    assert "METRICS_TOKEN is not set" in caplog.text
    settings.METRICS_TOKEN = TOKEN
    assert checks.check_metrics_token() == []
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True
    assert checks.check_metrics_token() == []


@pytest.fixture
def private(org, upstream):
    """An organization's own provider; ``add_model()`` gives it one more model."""
    provider = Provider.objects.create(
        organization=org,
        name="In-house",
        slug="inhouse-" + secrets.token_hex(4),
        base_url=f"{upstream.url}/openai/v1",
    )
    provider_credential_create(organization=org, provider=provider, secret="sk-x", name="own")

    def add_model() -> str:
        model = Model.objects.create(
            provider=provider,
            provider_model_id="confidential-" + secrets.token_hex(6),
            model_name="Confidential",
        )
        return model.catalog_id

    provider.add_model = add_model
    return provider


def series(text: str) -> set[str]:
    """The name and labels of every sample in an exposition (values dropped)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and line[0] != "#"}


def test_private_names_are_folded_global_ones_kept(client, gateway, upstream, private):
    model = private.add_model()
    upstream.script(model.split("/", 1)[1], Action("status", status=500))
    client.chat.completions.create(model=model, messages=MESSAGES)
    client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert private.slug not in text
    assert model.split("/", 1)[1] not in text
    assert re.search(r'gateway_requests_total\{[^}]*model="private",provider="private"', text)
    assert re.search(r'gateway_upstream_errors_total\{kind="http_500",model="private"', text)
    assert 'model="alpha/llama-3.1-8b",provider="alpha"' in text


def test_series_stay_bounded_as_private_models_are_added(client, gateway, private):
    client.chat.completions.create(model=private.add_model(), messages=MESSAGES)
    before = series(httpx.get(f"{gateway.url}/metrics").text)
    for _ in range(12):
        client.chat.completions.create(model=private.add_model(), messages=MESSAGES)
    after = series(httpx.get(f"{gateway.url}/metrics").text)
    assert after == before
