"""Per-key rate limits and budgets, per-credential quotas, and the concurrent race."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from modelhub.models import LimitCounter, ProviderCredential
from tests.support.gateway import COMPLETION_PRICE, PROMPT_PRICE, metrics_rows

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
# What one request costs at alpha's prices (10 prompt and 5 completion tokens upstream).
REQUEST_COST = 10 * PROMPT_PRICE + 5 * COMPLETION_PRICE


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.services)])
def limit_backend(request, gateway_settings, one_minute_window):
    if request.param == "redis":
        # The settings' URL, not the environment's: under xdist each worker has its own.
        gateway_settings.GATEWAY_LIMIT_REDIS_URL = gateway_settings.REDIS_URL
    gateway_settings.GATEWAY_LIMIT_BACKEND = request.param
    if request.param == "redis":
        import redis

        redis.from_url(gateway_settings.GATEWAY_LIMIT_REDIS_URL).flushdb()
    return request.param


def _sdk(gateway, issued):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=issued.raw_key, max_retries=0)


def test_requests_per_minute(limit_backend, gateway, make_key):
    sdk = _sdk(gateway, make_key(rate_limit_rpm=3))
    for _ in range(3):
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as error:
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert 1 <= int(error.value.response.headers["retry-after"]) <= 60
    assert error.value.code == "rate_limit_exceeded"


def test_tokens_per_minute_count_actual_usage(limit_backend, gateway, make_key):
    # Each request reserves its estimate and is corrected to the 15 tokens it used.
    sdk = _sdk(gateway, make_key(rate_limit_tpm=40))
    for _ in range(3):
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, max_tokens=5)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, max_tokens=5)


def test_budget_is_spent_by_actual_cost(limit_backend, gateway, make_key):
    sdk = _sdk(gateway, make_key(budget_amount=REQUEST_COST * 2, budget_period="day"))
    for _ in range(2):
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, max_tokens=1)
    with pytest.raises(openai.RateLimitError) as error:
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES, max_tokens=1)
    assert error.value.code == "budget_exceeded"
    assert int(error.value.response.headers["retry-after"]) > 0


def _race(gateway, raw_key, count):
    async def run():
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=raw_key, max_retries=0)
        async with sdk:
            results = await asyncio.gather(
                *[
                    sdk.chat.completions.create(
                        model="alpha/llama-3.1-8b", messages=MESSAGES, max_tokens=5
                    )
                    for _ in range(count)
                ],
                return_exceptions=True,
            )
        return results

    return asyncio.run(run())


def test_concurrent_requests_cannot_overspend_the_budget(
    limit_backend, gateway, make_key, upstream
):
    # The budget allows ten requests; a hundred arrive at once and the upstream is slow
    # enough that none has finished when the last one is admitted.
    issued = make_key(budget_amount=REQUEST_COST * 10, budget_period="month")
    upstream.delay = 0.3
    results = _race(gateway, issued.raw_key, 100)
    succeeded = [r for r in results if not isinstance(r, Exception)]
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(succeeded) + len(limited) == 100
    assert 1 <= len(succeeded) <= 10
    assert len(upstream.requests_for("llama-3.1-8b")) == len(succeeded)
    rows = metrics_rows(100)
    spent = sum((r.cost for r in rows), Decimal(0))
    assert spent <= REQUEST_COST * 10


def test_credential_quota_is_atomic_and_falls_back(gateway, catalog, client, upstream):
    ProviderCredential.objects.filter(pk=catalog["credentials"]["alpha"].pk).update(
        quota_requests=5
    )
    upstream.delay = 0.2
    results = _race(gateway, client.api_key, 12)
    assert all(not isinstance(r, Exception) for r in results)
    assert len(upstream.requests_for("llama-3.1-8b")) == 5
    assert len(upstream.requests_for("meta/llama-3.1-8b")) == 7
    assert ProviderCredential.objects.get(pk=catalog["credentials"]["alpha"].pk).used_requests == 5


def test_exhausted_credential_quota_is_429_when_nothing_else_serves(gateway, catalog, client):
    ProviderCredential.objects.filter(provider__slug="anthropic").update(quota_requests=1)
    client.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)
    assert error.value.code == "quota_exceeded"


def test_credential_usage_counters_follow_requests(client, catalog):
    for _ in range(3):
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    metrics_rows(3)
    credential = ProviderCredential.objects.get(pk=catalog["credentials"]["alpha"].pk)
    assert credential.used_requests == 3
    assert credential.used_tokens == 45
    assert credential.used_cost == REQUEST_COST * 3


@pytest.fixture
def database_limits(gateway_settings):
    gateway_settings.GATEWAY_LIMIT_BACKEND = "database"


def test_database_counters_are_windowed(database_limits, gateway, make_key):
    sdk = _sdk(gateway, make_key(rate_limit_rpm=10, budget_amount=Decimal("1")))
    sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    keys = sorted(LimitCounter.objects.values_list("key", flat=True))
    # The minute's requests, the budget's reservations and its settled spend.
    assert len(keys) == 3
    assert ":rpm:" in keys[0] and ":spend:month:" in keys[1] and ":spent:month:" in keys[2]


@pytest.fixture
def unreachable_limit_store(gateway_settings):
    gateway_settings.GATEWAY_LIMIT_BACKEND = "redis"
    # Nothing listens on port 1.
    gateway_settings.GATEWAY_LIMIT_REDIS_URL = "redis://127.0.0.1:1/0"


def test_unreachable_limit_store_is_a_503_and_nothing_goes_upstream(
    unreachable_limit_store, gateway, make_key, upstream
):
    issued = make_key(rate_limit_rpm=10)
    with pytest.raises(openai.InternalServerError) as error:
        _sdk(gateway, issued).chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 503
    assert error.value.code == "limits_unavailable"
    assert "rate limits and budgets" in error.value.message
    assert upstream.requests_for("llama-3.1-8b") == []
    # The refusal is recorded as any other.
    assert [row.status_code for row in metrics_rows(1, client_key=issued.client_key)] == [503]
    # A key without limits does not need the store.
    unlimited = _sdk(gateway, make_key())
    assert unlimited.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES).choices
