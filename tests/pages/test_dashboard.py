"""The operator dashboard: who sees what, and numbers computed by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
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


# --- Date ranges ----------------------------------------------------------------------------


def total_cost(html: str) -> str:
    return html.split('id="total-cost">', 1)[1].split("<", 1)[0]


@pytest.fixture
def spread(org, catalog):
    """One request each 0, 5, 40 and 80 days ago, with costs that tell them apart."""
    for days_ago, cost in ((0, "1"), (5, "2"), (40, "4"), (80, "8")):
        metric(org, catalog["llama"], cost=cost, latency=100, days_ago=days_ago)


@pytest.mark.parametrize(
    ("query", "cost", "label"),
    [
        ("", "$3.0000", "last 30 days"),
        ("?range=24h", "$1.0000", "last 24 h"),
        ("?range=7d", "$3.0000", "last 7 days"),
        ("?range=30d", "$3.0000", "last 30 days"),
        ("?range=90d", "$15.0000", "last 90 days"),
    ],
)
def test_range_presets(client, owner, spread, query, cost, label):
    html = login(client, owner).get(f"/dashboard/{query}").content.decode()
    assert total_cost(html) == cost
    assert f'<span id="range-label">{label}</span>' in html
    assert 'id="range-notice"' not in html


def test_custom_range_counts_whole_days_between_the_dates(client, owner, spread):
    today = timezone.now().date()
    first = today - timedelta(days=45)
    last = today - timedelta(days=4)
    response = login(client, owner).get(f"/dashboard/?from={first}&to={last}")
    html = response.content.decode()
    # 5 and 40 days ago are inside, today and 80 days ago are not.
    assert total_cost(html) == "$6.0000"
    assert f'value="{first:%Y-%m-%d}"' in html and f'value="{last:%Y-%m-%d}"' in html
    assert 'id="range-notice"' not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?range=1y", "Unknown range; choose one of 24h, 7d, 30d, 90d."),
        ("?from=yesterday", "Dates must look like 2026-01-31"),
        ("?from=2026-02-30", "Dates must look like 2026-01-31"),
        ("?to=2020-01-01", "A custom range needs a start date"),
        ("?from=2024-03-01&to=2024-02-01", "The start date is after the end date"),
        ("?from=2020-01-01&to=2024-01-01", "A custom range spans at most 366 days"),
        ("?from=2999-01-01", "The range starts in the future"),
        ("?from=%00&to=%ff", "Dates must look like 2026-01-31"),
    ],
)
def test_bad_range_falls_back_to_30_days_with_a_message(client, owner, spread, query, message):
    response = login(client, owner).get(f"/dashboard/{query}")
    assert response.status_code == 200
    html = response.content.decode()
    notice = html.split('id="range-notice"', 1)[1].split("</div>", 1)[0]
    assert message in notice
    assert total_cost(html) == "$3.0000"
    assert '<span id="range-label">last 30 days</span>' in html


def test_percentiles_are_shown_as_bucket_bounds_and_the_bar_is_labelled(
    client, owner, org, catalog
):
    metric(org, catalog["llama"], cost="0", latency=700)
    metric(org, catalog["gpt"], cost="0", latency=120)
    html = login(client, owner).get("/dashboard/").content.decode()
    table = html.split('id="provider-latency"', 1)[1].split("</table>", 1)[0]
    assert "≤&nbsp;750&nbsp;ms" in table and "≤&nbsp;150&nbsp;ms" in table
    assert '<th class="hide-sm">p95 vs slowest</th>' in table
    assert 'aria-label="100% p95 at 100% of the slowest provider&#x27;s"' in table
    assert 'aria-label="20% p95 at 20% of the slowest provider&#x27;s"' in table


# --- Staff view of every organization --------------------------------------------------------


@pytest.fixture
def staff(db):
    from modelhub.models import User

    return User.objects.create_user("operator", password="pw-operator-123", is_staff=True)


def test_staff_without_membership_see_all_organizations(client, staff, org, other_org, catalog):
    metric(org, catalog["llama"], cost="0.5", latency=100)
    metric(other_org, catalog["gpt"], cost="1.5", latency=100)
    html = login(client, staff).get("/dashboard/").content.decode()
    assert total_cost(html) == "$2.0000"
    assert '<span id="view-name">All organizations</span>' in html
    assert "Staff view: the sums of every organization." in html
    assert '<option value="*" selected>All organizations</option>' in html
    # every organization is offered, not only the staff member's own (none here)
    assert '<option value="acme" >' in html and '<option value="globex" >' in html


def test_staff_switch_to_one_organization_and_back(client, staff, org, other_org, catalog):
    metric(org, catalog["llama"], cost="0.5", latency=100)
    metric(other_org, catalog["gpt"], cost="1.5", latency=100)
    login(client, staff)
    html = client.get("/dashboard/?org=globex&range=7d").content.decode()
    assert total_cost(html) == "$1.5000"
    assert '<span id="view-name">Globex</span>' in html
    assert "Showing one organization: globex." in html
    assert '<option value="globex" selected>' in html
    assert '<option value="*" >All organizations</option>' in html
    # the switcher keeps the range
    switcher = html.split('id="org-switcher"', 1)[1].split("</form>", 1)[0]
    assert 'name="range" value="7d"' in switcher
    assert total_cost(client.get("/dashboard/").content.decode()) == "$1.5000"  # remembered
    assert total_cost(client.get("/dashboard/?org=*").content.decode()) == "$2.0000"


def test_members_cannot_pick_all_organizations_or_anothers(client, member, org, other_org):
    login(client, member)
    assert client.get("/dashboard/?org=*").status_code == 404
    assert client.get("/dashboard/?org=globex").status_code == 404
    html = client.get("/dashboard/").content.decode()
    assert "All organizations" not in html
    assert 'id="org-switcher"' not in html  # one organization: nothing to switch


def test_staff_unknown_organization_is_404(client, staff, org):
    assert login(client, staff).get("/dashboard/?org=nope").status_code == 404


def test_all_organizations_view_lists_each_credential_with_its_organization(
    client, staff, org, other_org, catalog
):
    services.provider_credential_create(
        organization=other_org,
        provider=catalog["gpt"].provider,
        secret="sk-other-secret-value",
        name="theirs",
    )
    html = login(client, staff).get("/dashboard/?org=*").content.decode()
    credentials = html.split('id="credentials"', 1)[1].split("</table>", 1)[0]
    assert "<td>globex</td>" in credentials and "theirs" in credentials
    assert "sk-other-secret-value" not in html


# --- Budget use -----------------------------------------------------------------------------


def spend(key, amount: str) -> None:
    """Count ``amount`` as spent from the key's budget, the way the gateway settles a
    request: on the key's spend counter of the current period."""
    import asyncio

    from django.conf import settings

    from gateway import limits
    from modelhub import budgets
    from modelhub.services import CounterIncrement, limit_counters_settle

    period = key.budget_period or None
    start, end = budgets.budget_period_bounds(period, timezone.now())
    counter = budgets.spend_counter(budgets.CLIENT_KEY, key.pk, period, start)
    spent = [CounterIncrement(counter, 0, budgets.to_picodollars(Decimal(amount)), end)]
    if settings.REDIS_URL:

        async def settle():
            limiter = limits.RedisLimiter(settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL)
            try:
                await limiter.settle([], spent)
            finally:
                await limiter.close()

        asyncio.run(settle())
    else:
        limit_counters_settle(deltas=[], spends=spent)


@pytest.fixture
def clean_counters():
    """Budget counters of this test's keys (ids repeat across tests) start from zero."""
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL)
        for name in [*client.scan_iter("gw:ck:*"), *client.scan_iter("gw:org:*")]:
            client.delete(name)
    yield


def test_client_key_budget_status_reads_the_gateways_counter(org, clean_counters):
    from modelhub.quotas import period_bounds
    from modelhub.selectors import client_key_budget_status

    key = services.client_key_create(
        organization=org, name="capped", budget_amount=Decimal("2"), budget_period="day"
    ).client_key
    unlimited = services.client_key_create(organization=org, name="free").client_key
    assert client_key_budget_status(unlimited).amount is None
    status = client_key_budget_status(key)
    assert (status.spent, status.amount, status.remaining) == (0, Decimal("2"), Decimal("2"))

    spend(key, "0.5")
    spend(key, "0.25")
    status = client_key_budget_status(key)
    assert status.spent == Decimal("0.75")
    assert status.remaining == Decimal("1.25")
    assert (status.period_start, status.period_end) == period_bounds("day")
    assert status.percent_used == 37.5


def test_dashboard_shows_budget_use_per_key(client, owner, org, other_org, clean_counters):
    key = services.client_key_create(
        organization=org, name="capped", budget_amount=Decimal("4"), budget_period="month"
    ).client_key
    theirs = services.client_key_create(
        organization=other_org, name="their-capped", budget_amount=Decimal("9")
    ).client_key
    spend(key, "3")
    spend(theirs, "1")
    html = login(client, owner).get("/dashboard/").content.decode()
    budgets = html.split('id="key-budgets"', 1)[1].split("</table>", 1)[0]
    assert "capped" in budgets and key.prefix in budgets
    assert "$3.0000 / $4.00" in budgets
    assert 'aria-label="75% of the key&#x27;s budget spent"' in budgets
    assert "their-capped" not in html
    # The organization itself has no budget.
    assert 'id="organization-budget"' not in html


def test_dashboard_shows_the_organizations_own_budget(client, owner, org, clean_counters):
    from modelhub import budgets
    from modelhub.services import CounterIncrement, limit_counters_settle, organization_update

    organization_update(organization=org, budget_amount=Decimal("10"), budget_period="month")
    org.refresh_from_db()
    start, end = budgets.budget_period_bounds("month", timezone.now())
    counter = budgets.spend_counter(budgets.ORGANIZATION, org.pk, "month", start)
    amount = budgets.to_picodollars(Decimal("2.5"))
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.GATEWAY_LIMIT_REDIS_URL or settings.REDIS_URL).incrby(
            counter, amount
        )
    else:
        limit_counters_settle(deltas=[], spends=[CounterIncrement(counter, 0, amount, end)])
    html = login(client, owner).get("/dashboard/").content.decode()
    line = html.split('id="organization-budget"', 1)[1].split("</p>", 1)[0]
    assert "$2.5000 of $10.00" in line
    assert "25% of the organization&#x27;s budget spent" in line


def test_staff_see_every_organizations_budgeted_keys(client, staff, org, other_org, clean_counters):
    services.client_key_create(organization=org, name="ours", budget_amount=Decimal("1"))
    services.client_key_create(organization=other_org, name="theirs", budget_amount=Decimal("1"))
    html = login(client, staff).get("/dashboard/?org=*").content.decode()
    budgets = html.split('id="key-budgets"', 1)[1].split("</table>", 1)[0]
    assert "ours" in budgets and "theirs" in budgets
    assert "<td>globex</td>" in budgets


def test_unreachable_budget_counters_are_a_message_not_an_error(client, owner, org, settings):
    services.client_key_create(organization=org, name="capped", budget_amount=Decimal("1"))
    settings.GATEWAY_LIMIT_BACKEND = "redis"
    settings.GATEWAY_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = login(client, owner).get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "budget counters (Redis) did not answer" in html
    assert 'id="total-cost"' in html


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

    migration = import_module("modelhub.migrations.0011_request_log")
    before = dict(ModelMetric.objects.values_list("pk", "error_source"))
    ModelMetric.objects.update(error_source="")
    MetricDaily.objects.update(client_errors=0, provider_errors=0)
    migration.attribute_errors(apps, None)
    assert dict(ModelMetric.objects.values_list("pk", "error_source")) == before
    totals = dashboard_summary(organization=org)["totals"]
    assert (totals["client_errors"], totals["provider_errors"]) == (3, 2)
