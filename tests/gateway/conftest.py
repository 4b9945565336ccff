"""Fixtures of the gateway suite: an organization with providers, models, credentials and
a client key, and the real OpenAI SDK as its client. The gateway under uvicorn and the
fake upstream come from ``tests.support.gateway``."""

from __future__ import annotations

import time

import openai
import pytest

from modelhub.models import ApiFormat, Model, Provider
from modelhub.services import client_key_create, provider_credential_create
from tests.support.gateway import COMPLETION_PRICE, PROMPT_PRICE


@pytest.fixture
def catalog(org, upstream):
    """Two OpenAI-compatible providers serving the same model, and an Anthropic one."""
    alpha = Provider.objects.create(
        name="Alpha",
        slug="alpha",
        base_url=f"{upstream.url}/openai/v1",
        api_key_env_var="ALPHA_KEY",
    )
    beta = Provider.objects.create(name="Beta", slug="beta", base_url=f"{upstream.url}/openai/v1")
    claude = Provider.objects.create(
        name="Anthropic",
        slug="anthropic",
        base_url=f"{upstream.url}/anthropic/v1",
        api_format=ApiFormat.ANTHROPIC,
    )
    prices = {"pricing_prompt": PROMPT_PRICE, "pricing_completion": COMPLETION_PRICE}
    models = {
        "alpha": Model.objects.create(
            provider=alpha, provider_model_id="llama-3.1-8b", model_name="Llama 3.1 8B", **prices
        ),
        # Same weights at another provider, pricier: the evaluator's fallback.
        "beta": Model.objects.create(
            provider=beta,
            provider_model_id="meta/llama-3.1-8b",
            model_name="Llama 3.1 8B",
            pricing_prompt=PROMPT_PRICE * 2,
            pricing_completion=COMPLETION_PRICE * 2,
        ),
        "alpha_embed": Model.objects.create(
            provider=alpha,
            provider_model_id="embed-small",
            model_name="Embed small",
            modality="text->embedding",
            **prices,
        ),
        "claude": Model.objects.create(
            provider=claude,
            provider_model_id="claude-haiku",
            model_name="Claude Haiku",
            max_completion_tokens=1024,
            **prices,
        ),
    }
    credentials = {
        slug: provider_credential_create(
            organization=org, provider=provider, secret=f"sk-{slug}-secret-0001", name=slug
        )
        for slug, provider in (("alpha", alpha), ("beta", beta), ("anthropic", claude))
    }
    return {
        "providers": {"alpha": alpha, "beta": beta, "anthropic": claude},
        "models": models,
        "credentials": credentials,
    }


@pytest.fixture
def make_key(org):
    def create(**fields):
        issued = client_key_create(organization=org, name=fields.pop("name", "app"), **fields)
        return issued

    return create


@pytest.fixture
def client_key(make_key):
    return make_key()


@pytest.fixture
def client(gateway, client_key):
    """The real OpenAI SDK pointed at the gateway, without its own retries."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=client_key.raw_key, max_retries=0)


@pytest.fixture
def one_minute_window():
    """Per-minute limits count in windows that start at each minute: a test that expects
    one window to see all its requests waits for the next minute when less than 20 s of
    the current one is left."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.05)


@pytest.fixture
def long_plan_cache(gateway_settings):
    """Plans cached for a minute. Request it before the gateway: its runtime reads the
    setting when it starts."""
    gateway_settings.GATEWAY_PLAN_CACHE_SECONDS = 60
    return gateway_settings


@pytest.fixture
def redis_limits(gateway_settings):
    """The gateway counts limits in Redis (emptied first); a synchronous client of it."""
    import redis

    gateway_settings.GATEWAY_LIMIT_BACKEND = "redis"
    # The settings' URL, not the environment's: under xdist each worker has its own.
    gateway_settings.GATEWAY_LIMIT_REDIS_URL = gateway_settings.REDIS_URL
    client = redis.from_url(gateway_settings.REDIS_URL)
    client.flushdb()
    return client
