"""The operator dashboard: who sees what, and numbers computed by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelhub import services
from modelhub.models import Model, Provider, Role
from modelhub.selectors import dashboard_summary
from tests.support.builders import rollup_snapshot


@pytest.fixture
def catalog(db):
    groq = Provider.objects.create(name="Groq", slug="groq")
    openrouter = Provider.objects.create(name="OpenRouter", slug="openrouter")
    return {
        "llama": Model.objects.create(
            provider=groq,
            provider_model_id="llama-3.1-8b-instant",
            model_name="Llama 3.1 8B",
            pricing_prompt=Decimal("0.00000005"),
            pricing_completion=Decimal("0.00000008"),
        ),
        "gpt": Model.objects.create(
            provider=openrouter,
            provider_model_id="openai/gpt-4o",
            model_name="GPT-4o",
            pricing_prompt=Decimal("0.0000025"),
            pricing_completion=Decimal("0.00001"),
        ),
    }


def metric(org, model, *, cost, latency, success=True, days_ago=0, fallbacks=0, key=None):
    return services.metric_create(
        organization=org,
        provider=model.provider,
        model=model,
        client_key=key,
        requested_model=model.catalog_id,
        served_model=model.catalog_id,
        input_tokens=100,
        output_tokens=50,
        cost=Decimal(cost),
        latency_ms=latency,
        success=success,
        status_code=200 if success else 502,
        fallbacks_used=fallbacks,
        created_at=timezone.now() - timedelta(days=days_ago, minutes=1),
    )


def login(client, user):
    client.force_login(user)
    return client


def test_dashboard_requires_login(client, db):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_summary_numbers_match_hand_computation(org, catalog):
    llama, gpt = catalog["llama"], catalog["gpt"]
    key = services.client_key_create(organization=org, name="backend").client_key
    # groq: latencies 100..1000 ms (10 successes) + 2 failures; openrouter: 3 successes
    for latency in range(100, 1001, 100):
        metric(org, llama, cost="0.001", latency=latency, key=key)
    metric(org, llama, cost="0", latency=50, success=False, fallbacks=1)
    metric(org, llama, cost="0", latency=60, success=False, fallbacks=2)
    for latency in (300, 500, 700):
        metric(org, gpt, cost="0.02", latency=latency, days_ago=3)
    metric(org, gpt, cost="5", latency=1, days_ago=40)  # outside the 30 days

    summary = dashboard_summary(organization=org)
    totals = summary["totals"]
    assert totals["requests"] == 15
    assert totals["failed_requests"] == 2
    assert totals["error_rate"] == round(2 / 15, 4)
    assert totals["cost"] == Decimal("0.010") + Decimal("0.06")
    assert totals["tokens"] == 15 * 150
    assert totals["fallbacks_taken"] == 3

    by_provider = {row["provider_slug"]: row for row in summary["latency_by_provider"]}
    # Nearest rank over the 10 successful groq latencies: p50 is the 5th (500 ms) and p95
    # the 10th (1000 ms); both are bucket bounds, so they come back exactly.
    assert by_provider["groq"]["p50_ms"] == 500
    assert by_provider["groq"]["p95_ms"] == 1000
    assert by_provider["groq"]["avg_latency_ms"] == 550.0
    assert by_provider["groq"]["requests"] == 12
    assert by_provider["groq"]["error_rate"] == round(2 / 12, 4)
    assert by_provider["groq"]["fallbacks"] == 3
    # 3 openrouter latencies: p50 is the 2nd (500 ms); p95 the 3rd, 700 ms, which falls
    # in the (600, 750] bucket and is reported as its upper bound.
    assert (by_provider["openrouter"]["p50_ms"], by_provider["openrouter"]["p95_ms"]) == (500, 750)

    top = summary["top_models"]
    assert [row["served_model"] for row in top] == [
        "openrouter/openai/gpt-4o",
        "groq/llama-3.1-8b-instant",
    ]
    assert top[0]["cost"] == Decimal("0.06")
    assert summary["top_client_keys"][0]["name"] == "backend"
    assert summary["top_client_keys"][0]["cost"] == Decimal("0.010")


def test_dashboard_page_shows_own_numbers_only(
    client, org, other_org, owner, member_factory, catalog
):
    metric(org, catalog["llama"], cost="0.25", latency=120)
    metric(other_org, catalog["gpt"], cost="99", latency=900)
    services.provider_credential_create(
        organization=other_org,
        provider=catalog["gpt"].provider,
        secret="sk-other-secret-value",
        name="theirs",
    )
    response = login(client, owner).get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="total-cost">$0.2500<' in html
    assert 'id="total-requests">1<' in html
    assert "openai/gpt-4o" not in html and "theirs" not in html and "99.0000" not in html


def test_dashboard_org_switcher(client, org, other_org, member_factory, catalog):
    user = member_factory(org, Role.MEMBER)
    member_factory(other_org, Role.ADMIN, user=user)
    metric(other_org, catalog["gpt"], cost="1.5", latency=300)
    login(client, user)
    html = client.get("/dashboard/?org=globex").content.decode()
    assert 'id="total-cost">$1.5000<' in html
    assert '<select id="org" name="org"' in html
    # the choice is remembered for the next visit
    assert 'id="total-cost">$1.5000<' in client.get("/dashboard/").content.decode()


def test_dashboard_foreign_org_is_404(client, org, other_org, owner):
    response = login(client, owner).get("/dashboard/?org=globex")
    assert response.status_code == 404
    assert login(client, owner).get("/dashboard/?org=does-not-exist").status_code == 404


def test_dashboard_empty_state_tells_what_to_do(client, org, owner):
    html = login(client, owner).get("/dashboard/").content.decode()
    assert 'id="next-steps"' in html
    assert "sync_models" in html
    assert "/api/modelhub/api-keys/" in html


def test_dashboard_without_organization(client, db):
    from tests.support.api import make_user

    html = login(client, make_user("loner")).get("/dashboard/").content.decode()
    assert "not in any organization" in html


def test_credential_health_and_quota_bars(client, org, owner, catalog):
    credential = services.provider_credential_create(
        organization=org,
        provider=catalog["llama"].provider,
        secret="gsk_secret_value_123456",
        name="main",
        quota_requests=200,
    )
    services.provider_credential_add_usage(
        credential_id=credential.pk,
        period=credential.quota_period,
        tokens=10,
        cost=Decimal("0.1"),
    )
    services.provider_credential_record_failure(
        credential=credential, error="HTTP 503 upstream down"
    )
    html = login(client, owner).get("/dashboard/").content.decode()
    assert "HTTP 503 upstream down" in html
    assert "gsk_secret_value" not in html  # only the hint
    assert 'style="width: 0.5%"' in html  # 1 of 200 requests


def test_admin_index_shows_sync_runs_and_health(client, db):
    from modelhub.models import SyncRun, User

    admin = User.objects.create_superuser("root", "root@example.com", "pw-root-123")
    SyncRun.objects.create(provider_slug="groq", status="failed", error="HTTP 401 from groq")
    html = login(client, admin).get("/admin/").content.decode()
    assert 'href="/dashboard/"' in html
    assert "HTTP 401 from groq" in html
    assert 'id="provider-health"' in html


def test_daily_series_and_range_are_whole_days(org, catalog):
    metric(org, catalog["llama"], cost="0.5", latency=100, days_ago=2)
    metric(org, catalog["llama"], cost="0.25", latency=100, days_ago=2)
    metric(org, catalog["llama"], cost="1", latency=100)
    summary = dashboard_summary(organization=org)
    daily = {row["date"]: row for row in summary["daily"]}
    two_days_ago = (timezone.now() - timedelta(days=2, minutes=1)).date()
    assert daily[two_days_ago]["cost"] == Decimal("0.75")
    assert daily[two_days_ago]["requests"] == 2
    assert sum(row["requests"] for row in summary["daily"]) == 3


def test_rollups_match_a_rebuild_from_requests(org, other_org, catalog):
    """The rollups written with each batch equal those recomputed from the raw rows."""
    from modelhub import rollups
    from modelhub.models import ModelMetric

    key = services.client_key_create(organization=org, name="k").client_key
    for i in range(40):
        metric(
            org,
            catalog["llama" if i % 3 else "gpt"],
            cost=f"0.00{i % 7}",
            latency=37 * i,
            success=i % 5 != 0,
            days_ago=i % 4,
            fallbacks=i % 2,
            key=key if i % 2 else None,
        )
    services.metrics_bulk_create(
        ModelMetric(
            organization=other_org,
            provider=catalog["gpt"].provider,
            model=catalog["gpt"],
            requested_model="x",
            served_model="x",
            input_tokens=1,
            output_tokens=2,
            total_tokens=3,
            cost=Decimal("0.1"),
            latency_ms=900,
        )
        for _ in range(5)
    )

    written = rollup_snapshot()
    assert written[0] and written[1]
    rollups.rebuild()
    assert rollup_snapshot() == written


def failure(org, model, *, status, error_type, attempts):
    return services.metric_create(
        organization=org,
        provider=model.provider,
        model=model,
        requested_model=model.catalog_id,
        served_model=model.catalog_id,
        status_code=status,
        success=False,
        error_type=error_type,
        attempts=attempts,
        created_at=timezone.now() - timedelta(minutes=1),
    )


@pytest.fixture
def outcomes(org, catalog):
    """10 requests of groq: 4 succeed, 3 are refused for the caller (bad input, its rate
    limit, an upstream 400 passed back), 2 fail at the provider (an upstream 5xx after
    attempts, an upstream 429) and 1 in the gateway (nothing could be tried)."""
    llama = catalog["llama"]
    for _ in range(4):
        metric(org, llama, cost="0.001", latency=100)
    failure(org, llama, status=400, error_type="invalid_request_error", attempts=0)
    failure(org, llama, status=429, error_type="rate_limit_exceeded", attempts=0)
    failure(org, llama, status=400, error_type="client_error", attempts=1)
    failure(org, llama, status=502, error_type="upstream_error", attempts=3)
    failure(org, llama, status=429, error_type="upstream_rate_limited", attempts=2)
    failure(org, llama, status=503, error_type="no_healthy_upstream", attempts=0)


def test_the_error_rate_counts_client_and_provider_errors_apart(org, outcomes):
    totals = dashboard_summary(organization=org)["totals"]
    assert totals["failed_requests"] == 6 and totals["error_rate"] == 0.6
    assert totals["client_errors"] == 3 and totals["client_error_rate"] == 0.3
    assert totals["provider_errors"] == 2 and totals["provider_error_rate"] == 0.2
    [groq] = dashboard_summary(organization=org)["latency_by_provider"]
    assert groq["provider_errors"] == 2 and groq["provider_error_rate"] == 0.2


def test_the_split_of_errors_survives_a_rebuild_of_the_rollups(org, outcomes):
    from modelhub import rollups

    written = rollup_snapshot()
    rollups.rebuild()
    assert rollup_snapshot() == written
    assert dashboard_summary(organization=org)["totals"]["client_errors"] == 3


def test_dashboard_page_shows_client_and_provider_error_rates(client, org, owner, outcomes):
    html = login(client, owner).get("/dashboard/").content.decode()
    assert 'id="error-rate">60%<' in html
    assert 'id="provider-error-rate"' in html and ">20%<" in html
    assert 'id="client-error-rate"' in html and ">30%<" in html


def test_rows_written_before_error_sources_get_theirs_from_the_migration(org, outcomes):
    """The migration attributes the failed rows already written, and splits their rollups."""
    from importlib import import_module

    from django.apps import apps

    from modelhub.models import MetricDaily, ModelMetric

    migration = import_module("modelhub.migrations.0008_request_log")
    before = dict(ModelMetric.objects.values_list("pk", "error_source"))
    ModelMetric.objects.update(error_source="")
    MetricDaily.objects.update(client_errors=0, provider_errors=0)
    migration.attribute_errors(apps, None)
    assert dict(ModelMetric.objects.values_list("pk", "error_source")) == before
    totals = dashboard_summary(organization=org)["totals"]
    assert (totals["client_errors"], totals["provider_errors"]) == (3, 2)
