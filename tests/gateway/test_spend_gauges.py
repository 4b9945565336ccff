"""Gauges read from the database on ``/metrics``: budget remaining per organization,
credential health per organization, last successful sync per provider. Computed on a
database thread when a scrape finds them old, never by a gateway request."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from gateway import telemetry
from modelhub import selectors
from modelhub.models import Provider, SyncRun, SyncStatus
from modelhub.services import (
    client_key_create,
    organization_update,
    provider_credential_create,
    provider_credential_update,
)
from tests.support.gateway import wait_for

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "alpha/llama-3.1-8b"
# 10 prompt tokens at 0.000001 and 5 completion tokens at 0.000002 (the fake upstream's usage).
REQUEST_COST = Decimal("0.00002")


@pytest.fixture(autouse=True)
def fresh_gauges(gateway_settings):
    """Each test starts from no snapshot and re-reads on every scrape unless it says not to."""
    gateway_settings.METRICS_GAUGE_REFRESH_SECONDS = 0
    telemetry.GAUGES.snapshot, telemetry.GAUGES.taken_at = None, float("-inf")
    yield
    telemetry.GAUGES.snapshot, telemetry.GAUGES.taken_at = None, float("-inf")


@pytest.fixture
def clean_counters():
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL)
        for name in [*client.scan_iter("gw:ck:*"), *client.scan_iter("gw:org:*")]:
            client.delete(name)


def scrape(gateway) -> tuple[str, dict]:
    text = httpx.get(f"{gateway.url}/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def value(samples: dict, name: str, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_budget_remaining_follows_the_gateways_counters(
    gateway, org, other_org, make_key, clean_counters
):
    import openai

    organization_update(organization=org, budget_amount=Decimal("20"), budget_period="month")
    capped = make_key(name="capped", budget_amount=Decimal("1"), budget_period="day")
    make_key(name="also-capped", budget_amount=Decimal("0.5"), budget_period="month")
    make_key(name="revoked", budget_amount=Decimal("7"), revoked_at=timezone.now())
    make_key(name="unlimited")
    client_key_create(organization=other_org, name="theirs", budget_amount=Decimal("3"))
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=capped.raw_key, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    # The reservation is settled to the actual cost after the response.
    wait_for(
        lambda: selectors.client_key_budget_status(capped.client_key).spent == 2 * REQUEST_COST
    )
    status = selectors.client_key_budget_status(capped.client_key)
    assert status.remaining == Decimal("1") - 2 * REQUEST_COST

    text, samples = scrape(gateway)
    remaining = "gateway_organization_budget_remaining_usd"
    assert value(samples, remaining, organization="acme", source="client_keys") == pytest.approx(
        1.5 - 2 * float(REQUEST_COST)
    )
    assert (
        value(samples, "gateway_organization_budget_usd", organization="acme", source="client_keys")
        == 1.5
    )
    assert value(samples, remaining, organization="globex", source="client_keys") == 3
    # The organization's own budget, spent by the same requests.
    assert value(samples, remaining, organization="acme", source="organization") == pytest.approx(
        20 - 2 * float(REQUEST_COST)
    )
    assert (
        value(
            samples, "gateway_organization_budget_usd", organization="acme", source="organization"
        )
        == 20
    )
    assert value(samples, remaining, organization="globex", source="organization") is None
    # Labelled by organization only: no key's name, prefix or value.
    for secret in (capped.raw_key, capped.client_key.prefix, "capped"):
        assert secret not in text


def test_credential_health_per_organization(gateway, org, other_org, catalog):
    provider_credential_update(credential=catalog["credentials"]["beta"], health_status="unhealthy")
    provider_credential_create(
        organization=other_org,
        provider=catalog["providers"]["alpha"],
        secret="sk-globex-secret-0001",
        name="theirs",
    )
    text, samples = scrape(gateway)
    credentials = "gateway_organization_credentials"
    assert value(samples, credentials, organization="acme", health="healthy") == 2
    assert value(samples, credentials, organization="acme", health="unhealthy") == 1
    assert value(samples, credentials, organization="acme", health="degraded") == 0
    assert value(samples, credentials, organization="globex", health="healthy") == 1
    assert "sk-globex-secret" not in text and "sk-beta-secret" not in text


def test_last_successful_sync_per_provider_with_private_ones_folded(gateway, org, catalog):
    alpha = catalog["providers"]["alpha"]
    private = Provider.objects.create(
        organization=org, name="Our vLLM", slug="secret-vllm", base_url="http://10.0.0.1/v1"
    )
    now = timezone.now().replace(microsecond=0)

    def run(provider, status, finished_ago, dry_run=False):
        SyncRun.objects.create(
            provider_slug=provider.slug,
            provider=provider,
            status=status,
            dry_run=dry_run,
            started_at=now - finished_ago - timedelta(seconds=5),
            finished_at=now - finished_ago,
        )

    run(alpha, SyncStatus.SUCCESS, timedelta(hours=3))
    run(alpha, SyncStatus.PARTIAL, timedelta(hours=2))  # success with skipped records
    run(alpha, SyncStatus.FAILED, timedelta(hours=1))  # not a success
    run(alpha, SyncStatus.SUCCESS, timedelta(minutes=5), dry_run=True)  # wrote nothing
    run(private, SyncStatus.SUCCESS, timedelta(minutes=30))

    text, samples = scrape(gateway)
    synced = "gateway_provider_last_sync_timestamp_seconds"
    assert value(samples, synced, provider="alpha") == (now - timedelta(hours=2)).timestamp()
    assert value(samples, synced, provider="private") == (now - timedelta(minutes=30)).timestamp()
    assert "secret-vllm" not in text
    assert value(samples, synced, provider="beta") is None  # never synced


def test_gauges_are_read_on_a_database_thread_and_reused_while_fresh(
    gateway, gateway_settings, org, other_org, client, monkeypatch
):
    threads = []
    real = selectors.telemetry_snapshot

    def recording_snapshot(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(selectors, "telemetry_snapshot", recording_snapshot)
    gateway_settings.METRICS_GAUGE_REFRESH_SECONDS = 3600
    _, first = scrape(gateway)
    assert threads and all(name.startswith("gateway-db") for name in threads)
    assert (
        value(first, "gateway_organization_credentials", organization="globex", health="healthy")
        is None
    )

    # Neither gateway requests nor scrapes within the refresh interval read them again.
    provider_credential_create(
        organization=other_org,
        provider=Provider.objects.get(slug="alpha"),
        secret="sk-globex-secret-0002",
        name="late",
    )
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    _, second = scrape(gateway)
    assert len(threads) == 1
    assert (
        value(second, "gateway_organization_credentials", organization="globex", health="healthy")
        is None
    )

    gateway_settings.METRICS_GAUGE_REFRESH_SECONDS = 0
    _, third = scrape(gateway)
    assert len(threads) == 2
    assert (
        value(third, "gateway_organization_credentials", organization="globex", health="healthy")
        == 1
    )


def test_gauges_beside_the_multiprocess_collector(db, org, catalog, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    telemetry.GAUGES.update(selectors.telemetry_snapshot())
    payload, _ = telemetry.exposition()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(payload.decode())
        for sample in family.samples
    }
    assert (
        value(samples, "gateway_organization_credentials", organization="acme", health="healthy")
        == 3
    )
