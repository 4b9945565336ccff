"""Per-tenant series on ``/metrics``: labelled by the organization's slug, never by a
client key, with failures told apart by whose they are."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelhub.services import client_key_create
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "alpha/llama-3.1-8b"


def scrape(gateway) -> tuple[str, dict]:
    """The exposition text and its samples as ``{(name, sorted labels): value}``."""
    text = httpx.get(f"{gateway.url}/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def sdk(gateway, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key.raw_key, max_retries=0)


def test_each_organizations_requests_tokens_and_cost(gateway, client, client_key, other_org):
    other_key = client_key_create(organization=other_org, name="other")
    _, before = scrape(gateway)
    for _ in range(2):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    # The other organization has no credential of its own: its request fails, but it is
    # still its own series.
    with pytest.raises(openai.APIStatusError):
        sdk(gateway, other_key).chat.completions.create(model=MODEL, messages=MESSAGES)
    text, after = scrape(gateway)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "gateway_organization_requests_total"
    assert (
        delta(requests, organization="acme", endpoint="chat.completions", status_class="2xx") == 2
    )
    assert (
        delta(requests, organization="globex", endpoint="chat.completions", status_class="2xx") == 0
    )
    assert delta("gateway_organization_tokens_total", organization="acme", direction="input") == 20
    assert delta("gateway_organization_tokens_total", organization="acme", direction="output") == 10
    # 10 prompt tokens at 0.000001 and 5 completion tokens at 0.000002, twice.
    assert delta("gateway_organization_cost_usd_total", organization="acme") == pytest.approx(4e-5)
    assert delta("gateway_organization_cost_usd_total", organization="globex") == 0
    assert (
        sum(
            v - value(before, *k[:1], **dict(k[1]))
            for k, v in after.items()
            if k[0] == requests and dict(k[1])["organization"] == "globex"
        )
        == 1
    )
    assert client_key.raw_key not in text
    assert other_key.raw_key not in text
    assert client_key.raw_key[:12] not in text


def test_client_errors_are_told_from_provider_errors(gateway, client, upstream, make_key):
    limited = sdk(gateway, make_key(name="limited", rate_limit_rpm=1))
    _, before = scrape(gateway)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    limited.chat.completions.create(model=MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model=MODEL, messages=MESSAGES)
    upstream.script("llama-3.1-8b", Action("status", status=500), Action("status", status=500))
    upstream.script("meta/llama-3.1-8b", Action("status", status=500))
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert failed.value.status_code >= 500
    _, after = scrape(gateway)

    def delta(kind):
        labels = {"organization": "acme", "kind": kind}
        name = "gateway_organization_errors_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("client") == 2
    assert delta("provider") == 1
    assert delta("gateway") == 0
    fallbacks = "gateway_organization_fallbacks_total"
    assert value(after, fallbacks, organization="acme") > value(
        before, fallbacks, organization="acme"
    )


def test_tenant_series_stay_behind_the_metrics_token(gateway, gateway_settings, client):
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    gateway_settings.METRICS_TOKEN = "metrics-tenant-token"
    url = f"{gateway.url}/metrics"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert "acme" not in refused.text
    allowed = httpx.get(url, headers={"Authorization": "Bearer metrics-tenant-token"})
    assert 'gateway_organization_requests_total{endpoint="chat.completions"' in allowed.text
    assert 'organization="acme"' in allowed.text


def test_counter_increments_are_summed_and_added_once_per_series():
    from prometheus_client import REGISTRY

    from gateway import telemetry

    def value(organization: str) -> float:
        labels = {"organization": organization, "direction": "input"}
        return REGISTRY.get_sample_value("gateway_organization_tokens_total", labels) or 0

    buffer = telemetry.CounterBuffer()
    before = value("buffered-a"), value("buffered-b")
    for amount in (3, 4, 5):
        buffer.add(telemetry.ORGANIZATION_TOKENS, ("buffered-a", "input"), amount)
    buffer.add(telemetry.ORGANIZATION_TOKENS, ("buffered-b", "input"))
    # Nothing reaches the series until the buffer is applied, then each gets its sum.
    assert (value("buffered-a"), value("buffered-b")) == before
    assert len(buffer.pending) == 2
    buffer.apply()
    assert (value("buffered-a"), value("buffered-b")) == (before[0] + 12, before[1] + 1)
    buffer.apply()
    assert (value("buffered-a"), value("buffered-b")) == (before[0] + 12, before[1] + 1)


def test_buffered_durations_are_the_histogram_that_observe_would_make():
    from prometheus_client import CollectorRegistry, Histogram

    from gateway import telemetry

    def histogram() -> tuple[CollectorRegistry, Histogram]:
        registry = CollectorRegistry()
        made = Histogram(
            "t_seconds", "t", ["endpoint"], buckets=telemetry.LATENCY_BUCKETS, registry=registry
        )
        return registry, made

    # On a bound, between bounds, below the first, past the last, and repeated.
    values = [0.005, 0.0051, 0.0001, 0.0, 0.3, 0.3, 1, 119.9, 120, 500.0, 2.5]
    direct_registry, direct = histogram()
    for value in values:
        direct.labels("chat").observe(value)
    direct.labels("embeddings").observe(0.02)

    buffered_registry, buffered = histogram()
    buffer = telemetry.CounterBuffer()
    for value in values:
        buffer.observe(buffered, ("chat",), value)
    buffer.observe(buffered, ("embeddings",), 0.02)
    assert buffered_registry.get_sample_value("t_seconds_count", {"endpoint": "chat"}) is None
    buffer.apply()
    buffer.apply()  # applied once: a second apply adds nothing

    def samples(registry):
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if not sample.name.endswith("_created")
        }

    expected = samples(direct_registry)
    assert samples(buffered_registry) == pytest.approx(expected)
    assert expected[("t_seconds_count", (("endpoint", "chat"),))] == len(values)
