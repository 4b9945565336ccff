"""Metrics: reporting, filters, and the summaries checked against hand-computed numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from modelhub import selectors
from modelhub.models import ModelMetric
from tests.support.api import API
from tests.support.builders import (
    make_client_key,
    make_credential,
    make_metric,
    make_model,
    make_provider,
)

METRICS = f"{API}/metrics/"
DAY1 = datetime(2025, 5, 1, 10, tzinfo=UTC)
DAY2 = datetime(2025, 5, 2, 15, tzinfo=UTC)
RANGE = {"start": "2025-05-01T00:00:00Z", "end": "2025-05-03T00:00:00Z"}


def ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def data(org, other_org):
    """Six requests of ``org`` over two days, one outside the range, one of another org."""
    openai = make_provider(None, slug="openai")
    groq = make_provider(None, slug="groq")
    gpt = make_model(
        openai,
        "gpt-4o",
        pricing_prompt=Decimal("0.0000025"),
        pricing_completion=Decimal("0.00001"),
    )
    mini = make_model(
        openai,
        "gpt-4o-mini",
        pricing_prompt=Decimal("0.00000015"),
        pricing_completion=Decimal("0.0000006"),
    )
    llama = make_model(
        groq,
        "llama-3.1-8b",
        pricing_prompt=Decimal("0.00000005"),
        pricing_completion=Decimal("0.00000008"),
    )
    app = make_client_key(org, name="app")
    batch = make_client_key(org, name="batch")
    cred = make_credential(org, openai, name="main")
    common = {"organization": org}
    rows = [
        # served as asked
        dict(model=gpt, provider=openai, requested_model="openai/gpt-4o", served_model="openai/gpt-4o",
             input_tokens=1000, output_tokens=500, cost=Decimal("0.0075"), latency_ms=800,
             strategy="priority", client_key=app, credential=cred, created_at=DAY1),
        # rerouted to mini by the cheapest strategy
        dict(model=mini, provider=openai, requested_model="openai/gpt-4o", served_model="openai/gpt-4o-mini",
             input_tokens=2000, output_tokens=1000, cost=Decimal("0.0009"), latency_ms=400,
             strategy="cheapest", client_key=app, created_at=DAY1),
        # rerouted to llama after one fallback
        dict(model=llama, provider=groq, requested_model="openai/gpt-4o", served_model="groq/llama-3.1-8b",
             input_tokens=4000, output_tokens=2000, cost=Decimal("0.00036"), latency_ms=200,
             strategy="cheapest", fallbacks_used=1, attempts=2, client_key=batch, created_at=DAY2),
        # unknown requested model rerouted: no price to compare against
        dict(model=llama, provider=groq, requested_model="house-model", served_model="groq/llama-3.1-8b",
             input_tokens=100, output_tokens=100, cost=Decimal("0.000013"), latency_ms=100,
             strategy="priority", client_key=batch, created_at=DAY2),
        # a failure after two fallbacks
        dict(model=gpt, provider=openai, requested_model="openai/gpt-4o", served_model="",
             input_tokens=0, output_tokens=0, cost=Decimal("0"), latency_ms=3000, success=False,
             status_code=502, error_type="upstream", strategy="priority", fallbacks_used=2,
             client_key=app, created_at=DAY2),
        # out of range (the day before)
        dict(model=gpt, provider=openai, requested_model="openai/gpt-4o", served_model="openai/gpt-4o",
             input_tokens=10, output_tokens=10, cost=Decimal("5"), created_at=DAY1 - timedelta(days=1)),
    ]  # fmt: skip
    metrics = [make_metric(**common, **row) for row in rows]
    make_metric(other_org, model=gpt, requested_model="x", cost=Decimal("100"), created_at=DAY1)
    return {
        "metrics": metrics,
        "gpt": gpt,
        "mini": mini,
        "llama": llama,
        "openai": openai,
        "groq": groq,
        "app": app,
        "batch": batch,
        "cred": cred,
    }


# --- Create and list ------------------------------------------------------------------------


def test_create_fills_total_tokens_and_the_organization(org, admin_client, global_model):
    response = admin_client.post(
        METRICS,
        {
            "requested_model": "gpt-4o-mini",
            "model": global_model.pk,
            "provider": global_model.provider_id,
            "input_tokens": 120,
            "output_tokens": 30,
            "cost": "0.000036",
            "latency_ms": 350,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    metric = ModelMetric.objects.get()
    assert metric.organization == org
    assert metric.total_tokens == 150
    assert metric.cost == Decimal("0.000036")
    assert response.json()["total_tokens"] == 150


def test_retrieve(org, data, member_client):
    metric = data["metrics"][1]
    body = member_client.get(f"{METRICS}{metric.pk}/").json()
    assert body["served_model"] == "openai/gpt-4o-mini"
    assert Decimal(body["cost"]) == Decimal("0.0009")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (lambda d: {"model": d["llama"].pk}, [3, 2]),
        (lambda d: {"provider": d["openai"].pk}, [4, 1, 0, 5]),
        (lambda d: {"client_key": d["batch"].pk}, [3, 2]),
        (lambda d: {"credential": d["cred"].pk}, [0]),
        (lambda d: {"success": "false"}, [4]),
        (lambda d: {"success": "true", "start": "2025-05-02T00:00:00Z"}, [3, 2]),
        (lambda d: {"start": "2025-05-01T00:00:00Z", "end": "2025-05-01T23:59:59Z"}, [1, 0]),
        (lambda d: {"end": "2025-04-30T23:59:59Z"}, [5]),
        (lambda d: {"requested_model": "house-model"}, [3]),
        (lambda d: {"search": "llama"}, [3, 2]),
        (lambda d: {"model_type": "embedding"}, []),
    ],
)
def test_list_filters(params, expected, data, member_client):
    found = ids(member_client.get(METRICS, params(data)))
    assert sorted(found) == sorted(data["metrics"][i].pk for i in expected)


def test_list_is_newest_first_and_orderable(data, member_client):
    metrics = data["metrics"]
    found = ids(member_client.get(METRICS))
    assert found == [
        m.pk for m in sorted(metrics, key=lambda m: (m.created_at, m.pk), reverse=True)
    ]
    found = ids(member_client.get(METRICS, {"ordering": "-cost"}))
    assert found[0] == metrics[5].pk


# --- cost_summary ----------------------------------------------------------------------------


def test_cost_summary_by_hand(data, member_client):
    response = member_client.get(f"{METRICS}cost_summary/", RANGE)
    assert response.status_code == 200, response.json()
    body = response.json()
    # In range: 0.0075 + 0.0009 + 0.00036 + 0.000013 + 0 = 0.008773
    assert Decimal(body["total_cost"]) == Decimal("0.008773")
    assert body["total_requests"] == 5
    # 1500 + 3000 + 6000 + 200 + 0
    assert body["total_tokens"] == 10700

    by_model = {(r["model"], r["served_model"]): r for r in body["by_model"]}
    gpt = by_model[(data["gpt"].pk, "openai/gpt-4o")]
    assert (gpt["requests"], gpt["tokens"], Decimal(gpt["cost"])) == (1, 1500, Decimal("0.0075"))
    llama = by_model[(data["llama"].pk, "groq/llama-3.1-8b")]
    assert (llama["requests"], llama["tokens"]) == (2, 6200)
    assert Decimal(llama["cost"]) == Decimal("0.000373")
    assert body["by_model"][0]["served_model"] == "openai/gpt-4o"  # most expensive first

    by_provider = {r["provider_slug"]: r for r in body["by_provider"]}
    assert by_provider["openai"]["requests"] == 3
    assert Decimal(by_provider["openai"]["cost"]) == Decimal("0.0084")
    assert by_provider["groq"]["requests"] == 2
    assert by_provider["groq"]["tokens"] == 6200

    assert [(r["date"], r["requests"], r["tokens"]) for r in body["by_day"]] == [
        ("2025-05-01", 2, 4500),
        ("2025-05-02", 3, 6200),
    ]
    assert Decimal(body["by_day"][0]["cost"]) == Decimal("0.0084")
    assert Decimal(body["by_day"][1]["cost"]) == Decimal("0.000373")


def test_cost_summary_defaults_to_the_last_30_days(org, member_client):
    from django.utils import timezone

    make_metric(org, cost=Decimal("1"), created_at=timezone.now() - timedelta(days=29))
    make_metric(org, cost=Decimal("2"), created_at=timezone.now() - timedelta(days=31))
    body = member_client.get(f"{METRICS}cost_summary/").json()
    assert Decimal(body["total_cost"]) == 1
    end = datetime.fromisoformat(body["end"])
    assert end - datetime.fromisoformat(body["start"]) == timedelta(days=30)


def test_empty_range_gives_zeros(data, member_client):
    body = member_client.get(
        f"{METRICS}cost_summary/", {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}
    ).json()
    assert Decimal(body["total_cost"]) == 0
    assert (body["total_requests"], body["total_tokens"]) == (0, 0)
    assert body["by_model"] == body["by_provider"] == body["by_day"] == []


# --- optimization_stats ---------------------------------------------------------------------


def test_optimization_stats_by_hand(data, member_client):
    response = member_client.get(f"{METRICS}optimization_stats/", RANGE)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["total_requests"] == 5
    # Successful and served by another model than asked: rows 1, 2 and 3.
    assert body["rerouted_requests"] == 3
    assert body["requests_with_fallback"] == 2
    assert body["fallbacks_taken"] == 3

    savings = {r["requested_model"]: r for r in body["savings_by_requested_model"]}
    gpt = savings["openai/gpt-4o"]
    assert gpt["requests"] == 2
    # At gpt-4o prices: (2000 + 4000) x 0.0000025 + (1000 + 2000) x 0.00001 = 0.015 + 0.03
    assert Decimal(gpt["requested_model_cost"]) == Decimal("0.045")
    assert Decimal(gpt["actual_cost"]) == Decimal("0.00126")
    assert Decimal(gpt["savings"]) == Decimal("0.04374")
    house = savings["house-model"]
    assert house["requested_model_cost"] is None and house["savings"] is None
    assert Decimal(body["estimated_savings"]) == Decimal("0.04374")

    latency = {r["strategy"]: r for r in body["latency_by_strategy"]}
    assert latency["cheapest"] == {"strategy": "cheapest", "requests": 2, "avg_latency_ms": 300.0}
    # The failure is not a latency observation: (800 + 100) / 2.
    assert latency["priority"] == {"strategy": "priority", "requests": 2, "avg_latency_ms": 450.0}


def test_requested_model_price_uses_the_cheapest_match(org):
    openai = make_provider(None, slug="openai")
    azure = make_provider(None, slug="azure")
    make_model(openai, "gpt-4o", pricing_prompt=Decimal("3"), pricing_completion=Decimal("4"))
    make_model(azure, "gpt-4o", pricing_prompt=Decimal("2"), pricing_completion=Decimal("9"))
    prices = selectors.requested_model_prices(org, ["gpt-4o", "openai/gpt-4o", "unknown"])
    assert prices == {
        "gpt-4o": (Decimal("2"), Decimal("9")),
        "openai/gpt-4o": (Decimal("3"), Decimal("4")),
    }


# --- dashboard_summary ----------------------------------------------------------------------


def test_dashboard_summary_by_hand(data, member_client):
    from modelhub import services

    services.provider_credential_record_failure(credential=data["cred"], error="429")
    response = member_client.get(f"{METRICS}dashboard_summary/", RANGE)
    assert response.status_code == 200, response.json()
    body = response.json()
    totals = body["totals"]
    assert totals["requests"] == 5
    assert (totals["successful_requests"], totals["failed_requests"]) == (4, 1)
    assert totals["error_rate"] == 0.2
    assert totals["tokens"] == 10700
    assert Decimal(totals["cost"]) == Decimal("0.008773")
    # (800 + 400 + 200 + 100) / 4: the failed request is not a latency observation.
    assert totals["avg_latency_ms"] == 375.0
    assert totals["fallbacks_taken"] == 3

    assert [(d["date"], d["requests"], d["errors"], d["tokens"]) for d in body["daily"]] == [
        ("2025-05-01", 2, 0, 4500),
        ("2025-05-02", 3, 1, 6200),
    ]
    assert [m["served_model"] for m in body["top_models"]][:2] == [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
    ]
    keys = {k["name"]: k for k in body["top_client_keys"]}
    assert keys["app"]["requests"] == 3
    assert Decimal(keys["app"]["cost"]) == Decimal("0.0084")
    assert keys["batch"]["tokens"] == 6200
    assert keys["app"]["prefix"] == data["app"].prefix
    assert body["top_client_keys"][0]["name"] == "app"
    assert body["credential_health"] == {"healthy": 0, "degraded": 1, "unhealthy": 0}
    assert date.fromisoformat(body["daily"][0]["date"]) == DAY1.date()


def test_reports_ignore_other_organizations(data, other_admin_client):
    body = other_admin_client.get(f"{METRICS}dashboard_summary/", RANGE).json()
    assert body["totals"]["requests"] == 1
    assert Decimal(body["totals"]["cost"]) == 100
    # Requests sent without a client key are not a key.
    assert body["top_client_keys"] == []


@pytest.mark.parametrize("report", ["cost_summary", "optimization_stats", "dashboard_summary"])
@pytest.mark.parametrize(
    "params",
    [
        {"start": "notadate"},
        {"end": "2025-13-45"},
        {"start": "2025-05-03T00:00:00Z", "end": "2025-05-01T00:00:00Z"},
    ],
)
def test_report_bad_ranges_are_400(report, params, member_client):
    response = member_client.get(f"{METRICS}{report}/", params)
    assert response.status_code == 400
    assert set(params) & set(response.json())
