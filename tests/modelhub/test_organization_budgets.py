"""An organization's budget and rate limits in the management API: who may change them,
and the spend of the current period read from the gateway's live counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelhub import selectors
from modelhub.budgets import CLIENT_KEY, ORGANIZATION, spend_counter, to_picodollars
from modelhub.models import LimitCounter, Organization, Role
from tests.support.api import API
from tests.support.builders import db_state, make_client_key

URL = f"{API}/organizations/acme/"
LIMITS = {
    "budget_amount": "250.000000",
    "budget_period": "day",
    "rate_limit_rpm": 600,
    "rate_limit_tpm": 100000,
}


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.services)])
def counters(request, settings):
    """Writes a spend counter where the gateway keeps it: Redis or LimitCounter rows."""
    settings.GATEWAY_LIMIT_BACKEND = request.param
    if request.param == "redis":
        import redis

        client = redis.from_url(settings.REDIS_URL)
        client.flushdb()
        settings.GATEWAY_LIMIT_REDIS_URL = settings.REDIS_URL

        def write(key: str, value: int) -> None:
            client.set(key, value)

        return write

    def write(key: str, value: int) -> None:
        LimitCounter.objects.create(
            key=key, value=value, expires_at=datetime(2100, 1, 1, tzinfo=UTC)
        )

    return write


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_set_the_limits(role, org, member_factory, api_client):
    response = api_client(member_factory(org, role), org).patch(URL, LIMITS, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert {field: body[field] for field in LIMITS} == LIMITS
    assert body["budget_spent"] == "0.000000000000"
    assert body["budget_remaining"] == "250.000000000000"
    org.refresh_from_db()
    assert org.budget_amount == Decimal("250") and org.rate_limit_tpm == 100000


def test_members_read_the_limits_and_cannot_change_them(org, member, api_client):
    org.budget_amount, org.rate_limit_rpm = Decimal("5"), 10
    org.save()
    client = api_client(member, org)
    body = client.get(URL).json()
    assert body["budget_amount"] == "5.000000" and body["rate_limit_rpm"] == 10
    assert body["budget_period"] == "month"
    before = db_state()
    response = client.patch(URL, {"budget_amount": "500"}, format="json")
    assert response.status_code == 403
    assert "detail" in response.json()
    assert db_state() == before


def test_no_budget_shows_no_spend(org, owner, api_client):
    body = api_client(owner, org).get(URL).json()
    assert body["budget_amount"] is None
    assert body["budget_spent"] is body["budget_remaining"] is None
    assert body["budget_period_start"] is body["budget_period_end"] is None


def test_a_budget_without_a_period_never_resets(org, owner, api_client):
    payload = {"budget_amount": "100", "budget_period": None}
    body = api_client(owner, org).patch(URL, payload, format="json").json()
    assert body["budget_period"] is None
    assert body["budget_period_start"] is None and body["budget_period_end"] is None
    assert body["budget_remaining"] == "100.000000000000"


def test_spent_and_remaining_come_from_the_live_counter(counters, org, owner, api_client):
    org.budget_amount, org.budget_period = Decimal("10"), "month"
    org.save()
    now = timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    counters(spend_counter(ORGANIZATION, org.pk, "month", start), to_picodollars(Decimal("2.5")))
    # Last month's spend is not this month's.
    last_month = (start - timedelta(days=1)).replace(day=1)
    counters(spend_counter(ORGANIZATION, org.pk, "month", last_month), to_picodollars(Decimal("9")))

    body = api_client(owner, org).get(URL).json()
    assert Decimal(body["budget_spent"]) == Decimal("2.5")
    assert Decimal(body["budget_remaining"]) == Decimal("7.5")
    assert body["budget_period_start"].startswith(start.strftime("%Y-%m-01T00:00:00"))
    # The list reads every organization's counters at once and shows the same.
    [row] = api_client(owner).get(f"{API}/organizations/").json()["results"]
    assert row["budget_spent"] == body["budget_spent"]

    status = selectors.organization_budget_status(Organization.objects.get(pk=org.pk))
    assert (status.spent, status.remaining, status.period_start) == (
        Decimal("2.5"),
        Decimal("7.5"),
        start,
    )


def test_overspend_leaves_nothing_remaining(counters, org):
    org.budget_amount, org.budget_period = Decimal("1"), "day"
    org.save()
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    counters(spend_counter(ORGANIZATION, org.pk, "day", start), to_picodollars(Decimal("1.2")))
    status = selectors.organization_budget_status(org)
    assert status.spent == Decimal("1.2") and status.remaining == 0


def test_a_key_budget_status(counters, org):
    key = make_client_key(org, budget_amount=Decimal("3"), budget_period="week")
    status = selectors.client_key_budget_status(key)
    assert status.spent == 0 and status.remaining == Decimal("3")
    counters(spend_counter(CLIENT_KEY, key.pk, "week", status.period_start), 10**12)
    status = selectors.client_key_budget_status(key)
    assert status.spent == Decimal("1") and status.remaining == Decimal("2")
    assert status.period_end is not None
    assert (status.period_end - status.period_start).days == 7


def test_limits_can_be_set_when_an_organization_is_created(db, api_client):
    from tests.support.api import make_user

    user = make_user("founder")
    response = api_client(user).post(
        f"{API}/organizations/",
        {"name": "Budgeted", "budget_amount": "20", "rate_limit_rpm": 5},
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = Organization.objects.get(slug="budgeted")
    assert created.budget_amount == Decimal("20") and created.rate_limit_rpm == 5
    assert created.budget_period == "month"
