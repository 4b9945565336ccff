"""Coalesced Redis settles: what finished requests give back and spend is written every
GATEWAY_LIMIT_SETTLE_INTERVAL_MS as one pipeline, and the counters, the budget's webhook
thresholds and a shutdown end as if each request had settled alone."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from gateway.limits import ReserveBatcher, SettleCoalescer
from modelhub.budgets import (
    CLIENT_KEY,
    ORGANIZATION,
    budget_period_bounds,
    reservation_counter,
    spend_counter,
    to_picodollars,
)
from modelhub.models import Organization, WebhookEvent
from modelhub.services import CounterIncrement, organization_update, webhook_create
from tests.support.gateway import COMPLETION_PRICE, PROMPT_PRICE, metrics_rows, wait_for

pytestmark = [pytest.mark.usefixtures("catalog"), pytest.mark.services]

MODEL = "alpha/llama-3.1-8b"
MESSAGES = [{"role": "user", "content": "hi"}]
# The mock upstream reports 10 prompt and 5 completion tokens.
REQUEST_COST = 10 * PROMPT_PRICE + 5 * COMPLETION_PRICE


@pytest.fixture
def settle_interval(request, gateway_settings):
    """GATEWAY_LIMIT_SETTLE_INTERVAL_MS of the gateway (set before it starts)."""
    gateway_settings.GATEWAY_LIMIT_SETTLE_INTERVAL_MS = request.param
    return request.param


def _flushes(outcome: str = "ok") -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("gateway_limit_settle_flushes_total", labels) or 0


def _dropped(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("gateway_limit_settles_dropped_total", labels) or 0


def _race(gateway, raw_key: str, count: int, **options) -> list:
    async def run():
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=raw_key, max_retries=0)
        async with sdk:
            return await asyncio.gather(
                *[
                    sdk.chat.completions.create(model=MODEL, messages=MESSAGES, **options)
                    for _ in range(count)
                ]
            )

    return asyncio.run(run())


def _budget_keys(subject: str, subject_id: int, period: str) -> tuple[str, str]:
    start, _ = budget_period_bounds(period, timezone.now())
    return (
        reservation_counter(subject, subject_id, period, start),
        spend_counter(subject, subject_id, period, start),
    )


def _value(client, key: str) -> int | None:
    value = client.get(key)
    return None if value is None else int(value)


@pytest.mark.parametrize("settle_interval", [5, 0], indirect=True)
def test_concurrent_settles_coalesce_and_end_where_inline_settles_do(
    settle_interval, redis_limits, gateway, make_key, org
):
    organization_update(
        organization=Organization.objects.get(pk=org.pk),
        budget_amount=Decimal(10),
        budget_period="month",
    )
    # No max_tokens: the tokens estimate (the prompt and 256) exceeds the 15 used, so every
    # settle gives back and may wait.
    issued = make_key(rate_limit_tpm=10**6, budget_amount=Decimal(10), budget_period="day")
    before = _flushes()
    _race(gateway, issued.raw_key, 48)
    rows = metrics_rows(48, client_key=issued.client_key)
    cost = sum(to_picodollars(row.cost) for row in rows)
    tokens = sum(row.input_tokens + row.output_tokens for row in rows)
    assert cost == 48 * to_picodollars(REQUEST_COST)
    expected = {
        key: cost
        for key in (
            *_budget_keys(CLIENT_KEY, issued.client_key.pk, "day"),
            *_budget_keys(ORGANIZATION, org.pk, "month"),
        )
    }

    def counters():
        return {key: _value(redis_limits, key) for key in expected}

    wait_for(lambda: counters() == expected)
    tpm = redis_limits.scan_iter(f"gw:ck:{issued.client_key.pk}:tpm:*")
    assert sum(int(redis_limits.get(key)) for key in tpm) == tokens == 48 * 15
    flushes = _flushes() - before
    if settle_interval:
        # 48 settles of two refunds and two spends each: a handful of pipelines.
        assert 1 <= flushes <= 24
    else:
        assert flushes == 0


# Long enough for all ten requests to settle in the same pipeline.
@pytest.mark.parametrize("settle_interval", [500], indirect=True)
def test_threshold_crossed_within_one_flush_fires_once(
    settle_interval, redis_limits, gateway, make_key, org, receiver, celery_eager
):
    webhook_create(
        organization=org,
        url=f"{receiver.url}/budget",
        thresholds=[5, 10, 50],
        events=[WebhookEvent.ORGANIZATION_BUDGET],
    )
    organization_update(
        organization=Organization.objects.get(pk=org.pk),
        budget_amount=REQUEST_COST * 100,
        budget_period="month",
    )
    issued = make_key()
    before = _flushes()
    _race(gateway, issued.raw_key, 10, max_tokens=5)
    received = receiver.wait_for(2)
    assert _flushes() - before == 1
    events = sorted((r.json["threshold"], Decimal(r.json["spent"])) for r in received)
    # The 5th request's share of the batch crossed 5%, the 10th's 10%; 50% is not reached.
    assert events == [(5, REQUEST_COST * 5), (10, REQUEST_COST * 10)]
    _, spent = _budget_keys(ORGANIZATION, org.pk, "month")
    assert _value(redis_limits, spent) == to_picodollars(REQUEST_COST * 10)
    assert len(receiver.received) == 2


# Nothing is written on its own within the test.
@pytest.mark.parametrize("settle_interval", [60_000], indirect=True)
def test_settles_ride_with_the_next_reservation_and_shutdown_writes_the_rest(
    settle_interval, redis_limits, gateway, make_key
):
    issued = make_key(budget_amount=Decimal(1), budget_period="day")
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)
    for _ in range(3):
        sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    reserved, spent = _budget_keys(CLIENT_KEY, issued.client_key.pk, "day")
    cost = to_picodollars(REQUEST_COST)
    # The first two settles went with the reservations of the next two requests; the
    # third request still holds its worst case, more than it cost.
    assert _value(redis_limits, spent) == 2 * cost
    assert _value(redis_limits, reserved) > 3 * cost
    gateway.stop()
    assert _value(redis_limits, reserved) == 3 * cost
    assert _value(redis_limits, spent) == 3 * cost


def test_failed_flush_is_counted_and_tried_once_more(redis_limits):
    spend = CounterIncrement("gw:ck:1:spent:total", 0, 7, timezone.now())

    def batcher(url: str) -> ReserveBatcher:
        return ReserveBatcher(url, timeout=5)

    async def run():
        # Nothing listens on port 1: Redis is unreachable.
        down = batcher("redis://127.0.0.1:1/0")
        up = batcher(django_settings.GATEWAY_LIMIT_REDIS_URL)
        coalescer = SettleCoalescer(down, interval=60, max_pending=10)
        seen = []
        coalescer.queue([("gw:ck:1:spend:total", -5)], [spend], seen.append)
        await coalescer.flush()
        assert len(coalescer.pending) == 1
        # The next flush reaches Redis: the settle lands once, with its spend values.
        coalescer.batcher = up
        await coalescer.flush()
        assert seen == [[7]]
        # A settle that fails twice is given up.
        coalescer.batcher = down
        coalescer.queue([("gw:ck:1:spend:total", -1)], [])
        await coalescer.flush()
        await coalescer.flush()
        assert coalescer.pending == []
        coalescer.task.cancel()
        for each in (down, up):
            await each.close()

    redis_limits.set("gw:ck:1:spend:total", 0)
    errors, dropped = _flushes("error"), _dropped("redis_error")
    asyncio.run(run())
    assert _flushes("error") - errors == 3
    assert _dropped("redis_error") - dropped == 1
    assert _value(redis_limits, "gw:ck:1:spend:total") == -5
    assert _value(redis_limits, "gw:ck:1:spent:total") == 7
