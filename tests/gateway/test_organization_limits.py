"""Organization limits: rpm, tpm and a budget over all of an organization's keys, reserved
in the same atomic step as each key's own limits, and the threshold webhooks their spend
sends. Every test runs on both limiter backends."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest
from django.conf import settings as django_settings

from modelhub import selectors
from modelhub.models import LimitCounter, Organization, WebhookDelivery, WebhookEvent
from modelhub.services import organization_update, webhook_create
from tests.support.api import API, client_for
from tests.support.gateway import COMPLETION_PRICE, PROMPT_PRICE, metrics_rows

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "alpha/llama-3.1-8b"
# What one request costs at alpha's prices (10 prompt and 5 completion tokens upstream).
REQUEST_COST = 10 * PROMPT_PRICE + 5 * COMPLETION_PRICE


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.services)])
def limit_backend(request, gateway_settings, one_minute_window):
    if request.param == "redis":
        import redis

        # The settings' URL, not the environment's: under xdist each worker has its own.
        gateway_settings.GATEWAY_LIMIT_REDIS_URL = gateway_settings.REDIS_URL
        redis.from_url(gateway_settings.GATEWAY_LIMIT_REDIS_URL).flushdb()
    gateway_settings.GATEWAY_LIMIT_BACKEND = request.param
    return request.param


def _sdk(gateway, issued):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)


def _chat(sdk):
    return sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)


def _limit(org: Organization, **fields) -> None:
    organization_update(organization=Organization.objects.get(pk=org.pk), **fields)


def counter_values(limit_backend: str, prefix: str) -> list[int]:
    if limit_backend == "redis":
        import redis

        client = redis.from_url(django_settings.GATEWAY_LIMIT_REDIS_URL)
        return [int(client.get(key)) for key in client.scan_iter(prefix + "*")]
    return list(LimitCounter.objects.filter(key__startswith=prefix).values_list("value", flat=True))


def test_organization_requests_per_minute_are_shared_by_its_keys(
    limit_backend, gateway, make_key, org
):
    _limit(org, rate_limit_rpm=3)
    first, second = _sdk(gateway, make_key(name="a")), _sdk(gateway, make_key(name="b"))
    _chat(first)
    _chat(second)
    _chat(first)
    with pytest.raises(openai.RateLimitError) as error:
        _chat(second)
    assert error.value.code == "organization_rate_limit_exceeded"
    assert "organization's rate limit of 3 requests per minute" in error.value.message
    headers = error.value.response.headers
    assert headers["x-ratelimit-scope"] == "organization"
    assert 1 <= int(headers["retry-after"]) <= 60


def test_a_refusal_by_either_reserves_nothing(limit_backend, gateway, make_key, org):
    # The organization allows two requests a minute; key a allows one, key b ten.
    _limit(org, rate_limit_rpm=2)
    limited = make_key(name="a", rate_limit_rpm=1)
    free = make_key(name="b", rate_limit_rpm=10)
    _chat(_sdk(gateway, limited))
    for _ in range(3):
        with pytest.raises(openai.RateLimitError) as error:
            _chat(_sdk(gateway, limited))
        assert error.value.code == "rate_limit_exceeded"
        assert error.value.response.headers["x-ratelimit-scope"] == "key"
    # The key's refusals took nothing of the organization's minute: b still gets one.
    _chat(_sdk(gateway, free))
    with pytest.raises(openai.RateLimitError) as error:
        _chat(_sdk(gateway, free))
    assert error.value.code == "organization_rate_limit_exceeded"
    # And the organization's refusals took nothing of the key's counters.
    assert counter_values(limit_backend, f"gw:ck:{free.client_key.pk}:rpm:") == [1]
    assert counter_values(limit_backend, f"gw:ck:{limited.client_key.pk}:rpm:") == [1]
    assert counter_values(limit_backend, f"gw:org:{org.pk}:rpm:") == [2]


def test_organization_tokens_per_minute_count_actual_usage(limit_backend, gateway, make_key, org):
    # Each request reserves its estimate and is corrected to the 15 tokens it used.
    _limit(org, rate_limit_tpm=40)
    keys = [_sdk(gateway, make_key(name=name)) for name in "abc"]
    for sdk in keys:
        _chat(sdk)
    with pytest.raises(openai.RateLimitError) as error:
        _chat(keys[0])
    assert error.value.code == "organization_rate_limit_exceeded"


@pytest.mark.parametrize("period", ["day", "month", None])
def test_organization_budget_is_spent_by_actual_cost(limit_backend, gateway, make_key, org, period):
    _limit(org, budget_amount=REQUEST_COST * 2, budget_period=period)
    first, second = make_key(name="a"), make_key(name="b", budget_amount=Decimal("1"))
    _chat(_sdk(gateway, first))
    _chat(_sdk(gateway, second))
    with pytest.raises(openai.RateLimitError) as error:
        _chat(_sdk(gateway, first))
    assert error.value.code == "organization_budget_exceeded"
    assert error.value.response.headers["x-ratelimit-scope"] == "organization"
    retry_after = int(error.value.response.headers["retry-after"])
    if period == "day":
        assert 0 < retry_after <= 86400
    elif period == "month":
        assert 0 < retry_after <= 31 * 86400
    else:
        assert retry_after > 365 * 86400  # a budget that never resets
    status = selectors.organization_budget_status(Organization.objects.get(pk=org.pk))
    assert status.spent == REQUEST_COST * 2
    assert status.remaining == 0
    assert status.period == period
    assert (status.period_start is None) == (period is None)
    # The key's own budget counts its own request only.
    key_status = selectors.client_key_budget_status(second.client_key)
    assert key_status.spent == REQUEST_COST
    assert key_status.remaining == Decimal("1") - REQUEST_COST


def test_an_update_through_the_api_applies_at_once(
    limit_backend, gateway, gateway_settings, make_key, org, owner
):
    # Well within the key cache's lifetime: the snapshot carries the organization's
    # limits, and the update drops it.
    gateway_settings.GATEWAY_KEY_CACHE_SECONDS = 60
    sdk = _sdk(gateway, make_key())
    _chat(sdk)
    _chat(sdk)
    response = client_for(owner, org).patch(
        f"{API}/organizations/{org.slug}/", {"rate_limit_rpm": 2}, format="json"
    )
    assert response.status_code == 200, response.json()
    # The organization's minute counts from the update on.
    _chat(sdk)
    _chat(sdk)
    with pytest.raises(openai.RateLimitError) as error:
        _chat(sdk)
    assert error.value.code == "organization_rate_limit_exceeded"
    response = client_for(owner, org).patch(
        f"{API}/organizations/{org.slug}/", {"rate_limit_rpm": None}, format="json"
    )
    assert response.status_code == 200
    _chat(sdk)


def test_spend_crossing_thresholds_sends_each_event_once(
    limit_backend, gateway, make_key, org, receiver, celery_eager
):
    created = webhook_create(
        organization=org,
        url=f"{receiver.url}/budget",
        thresholds=[50, 100],
        events=[WebhookEvent.ORGANIZATION_BUDGET, WebhookEvent.CLIENT_KEY_BUDGET],
    )
    _limit(org, budget_amount=REQUEST_COST * 4, budget_period="month")
    issued = make_key(name="a", budget_amount=REQUEST_COST * 2, budget_period="day")
    sdk = _sdk(gateway, issued)
    other = _sdk(gateway, make_key(name="b"))
    _chat(sdk)  # key 50%, organization 25%
    [key_half] = receiver.wait_for(1)
    _chat(sdk)  # key 100%, organization 50%
    _chat(other)  # organization 75%
    _chat(other)  # organization 100%
    metrics_rows(4, organization=org)
    received = receiver.wait_for(4)
    events = sorted((r.json["event"], r.json["threshold"]) for r in received)
    assert events == [
        ("client_key.budget_threshold", 50),
        ("client_key.budget_threshold", 100),
        ("organization.budget_threshold", 50),
        ("organization.budget_threshold", 100),
    ]
    assert all(r.signed_with(created.secret) for r in received)
    assert key_half.json["client_key"]["id"] == issued.client_key.pk
    assert Decimal(key_half.json["spent"]) == REQUEST_COST
    full = next(
        r.json for r in received if r.json["event"].startswith("org") and r.json["threshold"] == 100
    )
    assert Decimal(full["spent"]) == REQUEST_COST * 4
    assert Decimal(full["budget"]["amount"]) == REQUEST_COST * 4
    assert full["budget"]["period"] == "month"
    # Refused requests cost nothing and cross nothing more.
    with pytest.raises(openai.RateLimitError):
        _chat(other)
    assert WebhookDelivery.objects.count() == 4
    assert len(receiver.received) == 4
