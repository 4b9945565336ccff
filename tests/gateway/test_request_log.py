"""The request log as the gateway fills it: every failed attempt named with its provider
and credential, client errors told from provider errors, and the CSV export streamed by
the ASGI server."""

from __future__ import annotations

import csv
import io
import warnings

import httpx
import openai
import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub.models import ErrorSource, MetricDaily, ModelMetric
from tests.support.api import API
from tests.support.gateway import metrics_rows
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
ALPHA, BETA = "llama-3.1-8b", "meta/llama-3.1-8b"


def attempt(catalog, slug: str, error_type: str, status: int | None) -> dict:
    return {
        "provider": catalog["providers"][slug].pk,
        "credential": catalog["credentials"][slug].pk,
        "model": catalog["models"][slug].pk,
        "error_type": error_type,
        "status_code": status,
    }


def test_a_request_that_fell_back_names_every_failed_attempt(client, upstream, catalog):
    upstream.script(ALPHA, Action("status", status=503), Action("status", status=503))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    [row] = metrics_rows(1)
    assert row.success and row.error_source == ""
    # The row names what served; the attempts it fell back from name what failed.
    assert row.provider_id == catalog["providers"]["beta"].pk
    assert row.credential_id == catalog["credentials"]["beta"].pk
    assert row.failed_attempts == [attempt(catalog, "alpha", "http_503", 503)] * 2
    assert row.fallbacks_used == 1 and row.attempts == 3


def test_a_request_every_provider_failed_is_the_providers_failure(client, upstream, catalog):
    upstream.script(ALPHA, Action("status", status=500), Action("status", status=500))
    upstream.script(BETA, Action("status", status=500))
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert failed.value.status_code == 502
    [row] = metrics_rows(1)
    assert row.error_source == ErrorSource.PROVIDER
    assert row.provider_id == catalog["providers"]["beta"].pk
    assert row.failed_attempts == [
        attempt(catalog, "alpha", "http_500", 500),
        attempt(catalog, "alpha", "http_500", 500),
        attempt(catalog, "beta", "http_500", 500),
    ]
    assert row.attempts == 3  # the plan's bound on attempts


def test_upstream_timeouts_and_rate_limits_are_the_providers(
    client, upstream, catalog, gateway_settings
):
    gateway_settings.GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT = 0.3
    upstream.script(ALPHA, Action("hang", delay=1), Action("hang", delay=1))
    upstream.script(BETA, *[Action("status", status=429, headers={"Retry-After": "30"})] * 2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    [row] = metrics_rows(1)
    assert row.status_code == 429 and row.error_type == "upstream_rate_limited"
    assert row.error_source == ErrorSource.PROVIDER
    assert [(a["provider"], a["error_type"], a["status_code"]) for a in row.failed_attempts] == [
        (catalog["providers"]["alpha"].pk, "timeout", None),
        (catalog["providers"]["alpha"].pk, "timeout", None),
        (catalog["providers"]["beta"].pk, "http_429", 429),
    ]


def test_the_callers_own_errors_are_the_clients(client, upstream, catalog, make_key, gateway):
    # The upstream refuses the caller's input: passed back, and the caller's failure.
    upstream.script(ALPHA, Action("status", status=400))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    # The caller's own rate limit.
    limited = openai.OpenAI(
        base_url=f"{gateway.url}/v1",
        api_key=make_key(name="limited", rate_limit_rpm=1).raw_key,
        max_retries=0,
    )
    limited.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    rows = metrics_rows(3)
    refused, ok, limited_row = rows
    assert refused.error_source == ErrorSource.CLIENT and refused.status_code == 400
    assert refused.failed_attempts == [attempt(catalog, "alpha", "client_error", 400)]
    assert ok.error_source == ""
    assert limited_row.error_source == ErrorSource.CLIENT and limited_row.status_code == 429
    assert limited_row.failed_attempts == []
    # The dashboard's rollups count them apart.
    daily = MetricDaily.objects.filter(organization_id=refused.organization_id)
    assert sum(d.client_errors for d in daily) == 2
    assert sum(d.provider_errors for d in daily) == 0
    assert sum(d.errors for d in daily) == 2


def test_csv_export_streams_under_the_asgi_server(gateway, org, owner, monkeypatch):
    """Served by uvicorn, the export is read a chunk at a time on the request's database
    thread, not gathered into a list before the first byte (Django does that to a
    synchronous iterator under ASGI, and warns)."""
    from modelhub.api import exports

    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    ModelMetric.objects.bulk_create(
        ModelMetric(organization=org, requested_model=f"m{i}", latency_ms=i) for i in range(45)
    )
    token = RefreshToken.for_user(owner).access_token
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = httpx.get(
            f"{gateway.url}{API}/metrics/",
            params={"format": "csv", "ordering": "latency_ms"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers.get("transfer-encoding") == "chunked"
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert [row[header.index("requested_model")] for row in rows] == [f"m{i}" for i in range(45)]
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
