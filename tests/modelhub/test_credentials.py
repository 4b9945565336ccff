"""Provider credentials: write-only encrypted secrets, usage, health and quotas."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from modelhub import services
from modelhub.crypto import decrypt_secret, mask_secret
from modelhub.models import HealthStatus, ProviderCredential, QuotaPeriod
from modelhub.quotas import current_usage, exhausted_quota, period_bounds, quota_states
from modelhub.redaction import MAX_ERROR_LENGTH
from tests.support.api import API
from tests.support.builders import make_credential, make_provider

KEYS = f"{API}/api-keys/"
SECRET = "sk-live-Zq8pW3mN5vB7xC9kL1aa1b2"


@pytest.fixture
def provider(db):
    return make_provider(None, slug="openai")


def raw_column(credential) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT encrypted_secret FROM provider_credentials WHERE id = %s", [credential.pk]
        )
        return cursor.fetchone()[0]


# --- The secret -----------------------------------------------------------------------------


def test_create_stores_the_secret_encrypted_and_returns_only_the_hint(provider, admin_client):
    response = admin_client.post(
        KEYS, {"provider": provider.pk, "name": "main", "secret": SECRET}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body and "encrypted_secret" not in body
    assert body["secret_hint"] == "sk-...a1b2"
    assert SECRET not in json.dumps(body)
    credential = ProviderCredential.objects.get()
    column = raw_column(credential)
    assert SECRET not in column and "Zq8pW3mN5vB7" not in column
    assert decrypt_secret(column) == SECRET


def test_the_secret_is_never_returned_by_list_or_retrieve(org, provider, member_client):
    credential = make_credential(org, provider, secret=SECRET)
    for url in (KEYS, f"{KEYS}{credential.pk}/", f"{KEYS}health_status/", f"{KEYS}usage_summary/"):
        response = member_client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        assert SECRET not in text
        assert credential.encrypted_secret not in text
    assert member_client.get(f"{KEYS}{credential.pk}/").json()["secret_hint"] == "sk-...a1b2"


def test_updating_the_secret_reencrypts_and_resets_health(org, provider, admin_client):
    credential = make_credential(org, provider, secret=SECRET)
    ProviderCredential.objects.filter(pk=credential.pk).update(
        health_status=HealthStatus.UNHEALTHY,
        consecutive_failures=5,
        cooldown_until=timezone.now() + timedelta(minutes=5),
    )
    new_secret = "sk-rotated-9999999999zzzz"
    response = admin_client.patch(f"{KEYS}{credential.pk}/", {"secret": new_secret}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["secret_hint"] == "sk-...zzzz"
    assert new_secret not in response.content.decode()
    credential.refresh_from_db()
    assert decrypt_secret(raw_column(credential)) == new_secret
    assert credential.health_status == HealthStatus.HEALTHY
    assert credential.consecutive_failures == 0
    assert credential.cooldown_until is None


def test_update_without_secret_keeps_it(org, provider, admin_client):
    credential = make_credential(org, provider, secret=SECRET)
    response = admin_client.put(
        f"{KEYS}{credential.pk}/",
        {"provider": provider.pk, "name": "renamed", "quota_requests": 100},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert SECRET not in response.content.decode()
    credential.refresh_from_db()
    assert credential.name == "renamed" and credential.quota_requests == 100
    assert decrypt_secret(credential.encrypted_secret) == SECRET


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "x"},
        {"name": "x", "secret": ""},
        {"name": "x", "secret": "   "},
        {"name": "x", "secret": "s" * 5000},
    ],
)
def test_create_needs_a_non_empty_secret(payload, provider, admin_client):
    response = admin_client.post(KEYS, {"provider": provider.pk, **payload}, format="json")
    assert response.status_code == 400
    assert "secret" in response.json()
    assert not ProviderCredential.objects.exists()


def test_short_secrets_are_fully_masked():
    assert mask_secret("short") == "..."
    assert mask_secret("sk-abcdefghijkl") == "sk-...ijkl"


def test_duplicate_name_for_the_same_provider_is_400(org, provider, admin_client):
    make_credential(org, provider, name="main")
    response = admin_client.post(
        KEYS, {"provider": provider.pk, "name": "main", "secret": SECRET}, format="json"
    )
    assert response.status_code == 400
    assert "name" in response.json()


def test_another_org_may_reuse_a_name(org, other_org, provider, admin_client):
    make_credential(other_org, provider, name="main")
    response = admin_client.post(
        KEYS, {"provider": provider.pk, "name": "main", "secret": SECRET}, format="json"
    )
    assert response.status_code == 201


def test_counters_and_health_are_read_only(org, provider, admin_client):
    credential = make_credential(org, provider)
    response = admin_client.patch(
        f"{KEYS}{credential.pk}/",
        {"used_requests": 0, "health_status": "healthy", "secret_hint": "x", "used_cost": "0"},
        format="json",
    )
    assert response.status_code == 200
    ProviderCredential.objects.filter(pk=credential.pk).update(used_requests=7)
    admin_client.patch(f"{KEYS}{credential.pk}/", {"used_requests": 0}, format="json")
    credential.refresh_from_db()
    assert credential.used_requests == 7
    assert credential.secret_hint == mask_secret("sk-test-0123456789abcd")


# --- Usage, health and quotas --------------------------------------------------------------


def month_start(now):
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def test_usage_summary_per_key_and_in_total(org, other_org, provider, member_client):
    now = timezone.now()
    a = make_credential(org, provider, name="a")
    b = make_credential(org, provider, name="b", quota_period=QuotaPeriod.DAY)
    stale = make_credential(org, provider, name="stale")
    theirs = make_credential(other_org, provider, name="a")
    ProviderCredential.objects.filter(pk=a.pk).update(
        used_requests=10, used_tokens=1500, used_cost=Decimal("0.25")
    )
    ProviderCredential.objects.filter(pk=b.pk).update(
        used_requests=3, used_tokens=200, used_cost=Decimal("0.0125")
    )
    # Counters from last month count as zero in this period.
    ProviderCredential.objects.filter(pk=stale.pk).update(
        used_requests=99,
        used_tokens=9999,
        used_cost=Decimal("9"),
        period_started_at=month_start(now) - timedelta(days=3),
    )
    ProviderCredential.objects.filter(pk=theirs.pk).update(used_requests=1000)

    body = member_client.get(f"{KEYS}usage_summary/").json()

    rows = {r["name"]: r for r in body["credentials"]}
    assert set(rows) == {"a", "b", "stale"}
    assert (rows["a"]["requests"], rows["a"]["tokens"], Decimal(rows["a"]["cost"])) == (
        10,
        1500,
        Decimal("0.25"),
    )
    assert rows["b"]["quota_period"] == "day"
    assert (rows["stale"]["requests"], rows["stale"]["tokens"]) == (0, 0)
    assert Decimal(rows["stale"]["cost"]) == 0
    assert body["total_requests"] == 13
    assert body["total_tokens"] == 1700
    assert Decimal(body["total_cost"]) == Decimal("0.2625")


def test_health_status_counts_and_unhealthy_keys(org, other_org, provider, member_client):
    make_credential(org, provider, name="ok")
    degraded = make_credential(org, provider, name="degraded")
    broken = make_credential(org, provider, name="broken")
    services.provider_credential_record_failure(credential=degraded, error="HTTP 429")
    for _ in range(3):
        services.provider_credential_record_failure(credential=broken, error="HTTP 401 bad key")
    theirs = make_credential(other_org, provider, name="x")
    services.provider_credential_record_failure(credential=theirs, error="theirs")

    body = member_client.get(f"{KEYS}health_status/").json()

    assert body["counts"] == {"healthy": 1, "degraded": 1, "unhealthy": 1}
    assert body["total"] == 3
    unhealthy = {r["name"]: r for r in body["unhealthy"]}
    assert set(unhealthy) == {"degraded", "broken"}
    assert unhealthy["broken"]["last_error"] == "HTTP 401 bad key"
    assert unhealthy["broken"]["consecutive_failures"] == 3
    assert unhealthy["broken"]["health_status"] == "unhealthy"
    assert unhealthy["broken"]["cooldown_until"] is not None
    assert unhealthy["degraded"]["provider_slug"] == "openai"


def test_quota_status_against_hand_computed_values(org, provider, member_client):
    credential = make_credential(
        org,
        provider,
        quota_period=QuotaPeriod.DAY,
        quota_requests=1000,
        quota_tokens=50_000,
        quota_cost=Decimal("20"),
    )
    ProviderCredential.objects.filter(pk=credential.pk).update(
        used_requests=250, used_tokens=60_000, used_cost=Decimal("4.5")
    )
    now = timezone.now().astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)

    body = member_client.get(f"{KEYS}{credential.pk}/quota_status/").json()

    assert body["quota_period"] == "day"
    quotas = {q["quota"]: q for q in body["quotas"]}
    requests, tokens, cost = quotas["requests"], quotas["tokens"], quotas["cost"]
    assert Decimal(requests["limit"]) == 1000 and Decimal(requests["used"]) == 250
    assert Decimal(requests["remaining"]) == 750 and requests["percent_used"] == 25.0
    # Over the limit: nothing remains, the percentage says by how much.
    assert Decimal(tokens["remaining"]) == 0 and tokens["percent_used"] == 120.0
    assert Decimal(cost["used"]) == Decimal("4.5")
    assert Decimal(cost["remaining"]) == Decimal("15.5") and cost["percent_used"] == 22.5
    for quota in quotas.values():
        assert datetime.fromisoformat(quota["period_start"]) == midnight
        assert datetime.fromisoformat(quota["resets_at"]) == midnight + timedelta(days=1)


def test_quota_status_without_limits(org, provider, member_client):
    credential = make_credential(org, provider)
    quotas = member_client.get(f"{KEYS}{credential.pk}/quota_status/").json()["quotas"]
    assert [(q["quota"], q["limit"], q["remaining"], q["percent_used"]) for q in quotas] == [
        ("requests", None, None, None),
        ("tokens", None, None, None),
        ("cost", None, None, None),
    ]


def test_quota_status_after_period_rollover_counts_zero(org, provider, member_client):
    credential = make_credential(org, provider, quota_period=QuotaPeriod.HOUR, quota_requests=10)
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    ProviderCredential.objects.filter(pk=credential.pk).update(
        used_requests=10, period_started_at=hour - timedelta(minutes=1)
    )
    quotas = member_client.get(f"{KEYS}{credential.pk}/quota_status/").json()["quotas"]
    requests = quotas[0]
    assert Decimal(requests["used"]) == 0
    assert Decimal(requests["remaining"]) == 10
    assert requests["percent_used"] == 0.0
    assert datetime.fromisoformat(requests["resets_at"]) == hour + timedelta(hours=1)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("hour", "2025-03-10T14:35:00", "2025-03-10T14:00:00", "2025-03-10T15:00:00"),
        ("day", "2025-03-10T14:35:00", "2025-03-10T00:00:00", "2025-03-11T00:00:00"),
        # 2025-03-12 is a Wednesday: ISO weeks start on Monday the 10th.
        ("week", "2025-03-12T08:00:00", "2025-03-10T00:00:00", "2025-03-17T00:00:00"),
        ("month", "2025-12-31T23:59:59", "2025-12-01T00:00:00", "2026-01-01T00:00:00"),
        ("month", "2024-02-29T12:00:00", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),
    ],
)
def test_period_bounds(period, now, start, end):
    as_utc = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731
    assert period_bounds(period, as_utc(now)) == (as_utc(start), as_utc(end))


def test_add_usage_rolls_the_period_over(org, provider):
    credential = make_credential(org, provider, quota_period=QuotaPeriod.DAY, quota_tokens=100)
    day1 = datetime(2025, 3, 10, 9, tzinfo=UTC)
    ProviderCredential.objects.filter(pk=credential.pk).update(period_started_at=day1)
    services.provider_credential_add_usage(
        credential_id=credential.pk,
        period=credential.quota_period,
        tokens=60,
        cost=Decimal("0.5"),
        now=day1 + timedelta(hours=1),
    )
    services.provider_credential_add_usage(
        credential_id=credential.pk,
        period=credential.quota_period,
        tokens=50,
        cost=Decimal("0.25"),
        now=day1 + timedelta(hours=2),
    )
    credential.refresh_from_db()
    assert (credential.used_requests, credential.used_tokens) == (2, 110)
    assert credential.used_cost == Decimal("0.75")
    assert exhausted_quota(credential, day1 + timedelta(hours=3)) == "tokens"
    next_day = day1 + timedelta(days=1)
    assert current_usage(credential, next_day) == (0, 0, Decimal(0))
    assert exhausted_quota(credential, next_day) is None

    services.provider_credential_add_usage(
        credential_id=credential.pk,
        period=credential.quota_period,
        tokens=7,
        cost=Decimal("0.01"),
        now=next_day,
    )
    credential.refresh_from_db()
    assert (credential.used_requests, credential.used_tokens) == (1, 7)
    assert credential.used_cost == Decimal("0.01")
    assert credential.period_started_at == next_day
    states = {s.name: s for s in quota_states(credential, next_day)}
    assert states["tokens"].remaining == 93


def test_zero_limit_is_exhausted(org, provider):
    credential = make_credential(org, provider, quota_requests=0)
    state = quota_states(credential)[0]
    assert state.exhausted and state.percent_used == 100.0 and state.remaining == 0


# --- Failures and cooldown ---------------------------------------------------------------


def test_failures_degrade_then_cool_down_with_backoff(org, provider, settings):
    settings.CREDENTIAL_FAILURE_THRESHOLD = 3
    settings.CREDENTIAL_COOLDOWN_SECONDS = 30
    credential = make_credential(org, provider)
    t0 = datetime(2025, 3, 10, 12, tzinfo=UTC)

    c = services.provider_credential_record_failure(credential=credential, error="boom", now=t0)
    assert (c.health_status, c.consecutive_failures, c.cooldown_until) == ("degraded", 1, None)
    services.provider_credential_record_failure(credential=credential, error="boom", now=t0)
    c = services.provider_credential_record_failure(credential=credential, error="e3", now=t0)
    assert c.health_status == "unhealthy"
    assert c.cooldown_until == t0 + timedelta(seconds=30)
    c = services.provider_credential_record_failure(credential=credential, error="e4", now=t0)
    assert c.cooldown_until == t0 + timedelta(seconds=60)
    c = services.provider_credential_record_failure(credential=credential, error="e5", now=t0)
    assert c.cooldown_until == t0 + timedelta(seconds=120)
    assert c.last_error == "e5" and c.last_failure_at == t0
    for _ in range(20):
        c = services.provider_credential_record_failure(credential=credential, error="x", now=t0)
    assert c.cooldown_until == t0 + timedelta(seconds=3600)  # capped at an hour
    assert c.consecutive_failures == 25


def test_long_errors_are_truncated(org, provider):
    credential = make_credential(org, provider)
    c = services.provider_credential_record_failure(credential=credential, error="e" * 5000)
    assert len(c.last_error) == MAX_ERROR_LENGTH


def test_one_success_makes_a_credential_healthy_again(org, provider):
    credential = make_credential(org, provider)
    for _ in range(4):
        services.provider_credential_record_failure(credential=credential, error="boom")
    t1 = datetime(2025, 3, 10, 13, tzinfo=UTC)
    services.provider_credential_record_success(credential=credential, now=t1)
    credential.refresh_from_db()
    assert credential.health_status == HealthStatus.HEALTHY
    assert credential.consecutive_failures == 0
    assert credential.cooldown_until is None
    assert credential.last_success_at == t1
    assert credential.last_error == "boom"  # kept for the record
