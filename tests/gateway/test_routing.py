"""Model resolution, retries with backoff, fallback, cooldown and recovery."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import openai
import pytest
from django.utils import timezone

from gateway import plan as gateway_plan
from modelhub.models import HealthStatus, Model, Provider, ProviderCredential
from modelhub.services import routing_rule_save
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")


class Evaluations(list):
    """The requests the gateway evaluated a plan for, in order; each evaluation waits
    ``delay`` seconds first."""

    delay = 0.0


@pytest.fixture
def evaluations(monkeypatch):
    evaluated = Evaluations()
    real_evaluate = gateway_plan.evaluate

    def counting(**kwargs):
        evaluated.append(kwargs["request"])
        time.sleep(evaluated.delay)
        return real_evaluate(**kwargs)

    monkeypatch.setattr(gateway_plan, "evaluate", counting)
    return evaluated


MESSAGES = [{"role": "user", "content": "hi"}]
ALPHA, BETA = "llama-3.1-8b", "meta/llama-3.1-8b"


def test_alias_of_a_routing_rule(client, org, catalog, upstream):
    routing_rule_save(
        organization=org,
        name="fast",
        match_model="fast",
        targets=[{"model": catalog["models"]["beta"]}],
    )
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=MESSAGES)
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert upstream.requests[-1]["body"]["model"] == BETA


def test_prompts_of_other_lengths_share_a_plan_within_their_band(
    long_plan_cache, client, catalog, upstream, evaluations
):
    Model.objects.filter(provider_model_id__in=[ALPHA, BETA]).update(context_length=200)
    for words in (1, 5, 20, 60):
        raw = client.chat.completions.with_raw_response.create(
            model=ALPHA, messages=[{"role": "user", "content": "hi " * words}]
        )
        assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    # The first request's own count, then the band its plan holds for.
    assert len(evaluations) == 2

    # Past the context length: a band of its own, and each error quotes its own count.
    quoted = []
    for words in (400, 500):
        with pytest.raises(openai.NotFoundError) as error:
            client.chat.completions.create(
                model=ALPHA, messages=[{"role": "user", "content": "hi " * words}]
            )
        found = re.search(r"smaller than the (\d+) input tokens", error.value.body["message"])
        assert found, error.value.body["message"]
        quoted.append(int(found.group(1)))
    assert len(evaluations) == 3
    assert quoted[0] == evaluations[-1].estimated_input_tokens and 200 < quoted[0] < quoted[1]


def test_requests_in_flight_wait_for_one_plan_while_the_bands_are_unknown(
    long_plan_cache, gateway, client_key, catalog, upstream, evaluations
):
    # After every invalidation the cache is empty, as it is here. Requests in flight then
    # must not each evaluate a plan for their own prompt length.
    Model.objects.filter(provider_model_id__in=[ALPHA, BETA]).update(context_length=200)
    evaluations.delay = 0.3  # every request of a burst arrives while the first is evaluated

    async def burst(model, word_counts):
        sdk = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key=client_key.raw_key, max_retries=0
        )
        async with sdk:
            return await asyncio.gather(
                *[
                    sdk.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "hi " * words}]
                    )
                    for words in word_counts
                ],
                return_exceptions=True,
            )

    results = asyncio.run(burst(ALPHA, range(1, 13)))
    assert all(not isinstance(r, Exception) for r in results), results
    assert len(evaluations) == 1

    # Two bands: the plan first evaluated, then one for the other band (past the context
    # length), whatever the order the requests come in. (Another model: its bands are
    # not known yet either.)
    evaluations.clear()
    results = asyncio.run(burst("beta/meta/llama-3.1-8b", [1, 400, 2, 450, 3, 500, 4, 550]))
    served = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.NotFoundError)]
    assert (len(served), len(refused)) == (4, 4), results
    assert len(evaluations) == 2


def test_a_weighted_rule_draws_each_request_from_the_cached_plan(
    long_plan_cache, client, org, catalog, upstream
):
    # The plan is cached for the whole test: the weights must still spread the requests.
    routing_rule_save(
        organization=org,
        name="split",
        match_model="split",
        strategy="weighted",
        targets=[
            {"model": catalog["models"]["alpha"], "weight": 1},
            {"model": catalog["models"]["beta"], "weight": 1},
        ],
    )
    served = Counter(
        client.chat.completions.with_raw_response.create(model="split", messages=MESSAGES).headers[
            "x-gateway-model"
        ]
        for _ in range(40)
    )
    # Even odds: one target for all 40 would happen once in 2**39 runs.
    assert set(served) == {"alpha/llama-3.1-8b", "beta/meta/llama-3.1-8b"}, served


def test_auto_picks_the_cheapest_usable_model(client, upstream):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    assert raw.headers["x-gateway-model"] in {"alpha/llama-3.1-8b", "anthropic/claude-haiku"}


def test_models_list_is_an_ordered_fallback(client, upstream):
    upstream.script("claude-haiku", Action("status", status=503), Action("status", status=503))
    raw = client.chat.completions.with_raw_response.create(
        model="anthropic/claude-haiku",
        messages=MESSAGES,
        extra_body={"models": ["anthropic/claude-haiku", "beta/meta/llama-3.1-8b"]},
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert raw.headers["x-gateway-attempts"] == "3"
    assert raw.headers["x-gateway-fallbacks"] == "1"
    assert "models" not in upstream.requests[-1]["body"]


def test_retry_on_5xx_then_success_on_the_same_candidate(client, upstream, catalog):
    upstream.script(ALPHA, Action("status", status=500))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert len(upstream.requests_for(ALPHA)) == 2
    [row] = metrics_rows(1)
    assert row.attempts == 2 and row.fallbacks_used == 0 and row.success


def test_retry_honours_retry_after(client, upstream):
    upstream.script(ALPHA, Action("status", status=429, headers={"Retry-After": "0.4"}))
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert time.monotonic() - started >= 0.4
    assert raw.headers["x-gateway-attempts"] == "2"


def test_long_retry_after_falls_back_at_once(client, upstream):
    upstream.script(ALPHA, Action("status", status=429, headers={"Retry-After": "30"}))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert len(upstream.requests_for(ALPHA)) == 1


def test_fallback_after_retries_on_timeouts(client, upstream, gateway_settings):
    gateway_settings.GATEWAY_UPSTREAM_READ_TIMEOUT = 0.3
    upstream.script(ALPHA, Action("hang", delay=1), Action("hang", delay=1))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert raw.headers["x-gateway-attempts"] == "3"
    [row] = metrics_rows(1)
    assert row.fallbacks_used == 1 and row.served_model == "beta/meta/llama-3.1-8b"


def test_connection_errors_fall_back(client, catalog, upstream):
    Provider.objects.filter(slug="alpha").update(base_url="http://127.0.0.1:9/v1")
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"


def test_all_candidates_failing_is_502_and_429_keeps_retry_after(client, upstream):
    upstream.script(ALPHA, *[Action("status", status=502)] * 2)
    upstream.script(BETA, Action("status", status=502))
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.status_code == 502

    upstream.script(ALPHA, Action("status", status=429, headers={"Retry-After": "7"}))
    upstream.script(BETA, Action("status", status=429, headers={"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.response.headers["retry-after"] == "7"


def test_failing_credential_cools_down_and_recovers(
    long_plan_cache, client, upstream, catalog, evaluations
):
    credential = catalog["credentials"]["alpha"]
    # Threshold 2: the two failed attempts of this request make it unhealthy.
    upstream.script(ALPHA, Action("status", status=500), Action("status", status=500))
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    credential.refresh_from_db()
    assert credential.health_status == HealthStatus.UNHEALTHY
    assert credential.cooldown_until is not None

    # While it cools down the evaluator skips it: alpha gets no request. The plan that
    # says so is cached (once the notices of the failure have landed).
    evaluations.clear()
    before = len(upstream.requests_for(ALPHA))
    time.sleep(0.2)
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="alpha/llama-3.1-8b", messages=MESSAGES
        )
        assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    assert len(upstream.requests_for(ALPHA)) == before
    # The first plan, then the one for its band (see the band test above); then cached.
    assert len(evaluations) == 2

    # When the cooldown ends it is tried again (the cached plan ends with it, long before
    # the plan cache's minute), and one success heals it.
    time.sleep(max((credential.cooldown_until - timezone.now()).total_seconds(), 0) + 0.05)
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    assert raw.headers["x-gateway-model"] == "alpha/llama-3.1-8b"
    assert len(evaluations) == 3
    wait_for(
        lambda: (
            ProviderCredential.objects.get(pk=credential.pk).health_status == HealthStatus.HEALTHY
        )
    )
    credential.refresh_from_db()
    assert credential.consecutive_failures == 0 and credential.cooldown_until is None


def test_every_credential_cooling_down_is_503(client, upstream, catalog):
    upstream.script("claude-haiku", Action("status", status=500), Action("status", status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as error:
        client.chat.completions.create(model="anthropic/claude-haiku", messages=MESSAGES)
    assert error.value.status_code == 503
    assert int(error.value.response.headers["retry-after"]) >= 1


def test_environment_credential_and_keyless_provider(
    client, org, catalog, upstream, monkeypatch, gateway_settings
):
    ProviderCredential.objects.filter(provider__slug__in=["alpha", "beta"]).delete()
    gateway_settings.GATEWAY_ALLOW_ENV_CREDENTIALS = True
    monkeypatch.setenv("ALPHA_KEY", "sk-from-environment")
    client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert upstream.requests[-1]["headers"]["authorization"] == "Bearer sk-from-environment"

    Provider.objects.filter(slug="beta").update(requires_api_key=False, organization=org)
    client.chat.completions.create(model="beta/meta/llama-3.1-8b", messages=MESSAGES)
    assert "authorization" not in upstream.requests[-1]["headers"]
