"""Fixtures of the gateway suite: a fake upstream, the gateway served by uvicorn, and an
organization with providers, models, credentials and a client key.

The gateway runs in a thread of the test process, so it uses pytest-django's test
database (``transactional_db``: rows are committed and visible to its threads). On
SQLite that database is a file: the shared-cache in-memory database fails concurrent
writers with "table is locked" instead of letting them wait.
"""

from __future__ import annotations

import os
import tempfile
import time
from decimal import Decimal

import openai
import pytest
from django.conf import settings as django_settings

from modelhub.models import ApiFormat, Model, ModelMetric, Provider
from modelhub.services import client_key_create, provider_credential_create
from tests.gateway.fake_upstream import FakeUpstream, ServerThread

_database = django_settings.DATABASES["default"]
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database.setdefault("TEST", {})
    if not _database["TEST"].get("NAME"):
        _database["TEST"]["NAME"] = os.path.join(
            tempfile.gettempdir(), f"gateway-tests-{os.getpid()}.sqlite3"
        )

PROMPT_PRICE = Decimal("0.000001")
COMPLETION_PRICE = Decimal("0.000002")


@pytest.fixture(scope="session")
def upstream():
    fake = FakeUpstream()
    server = ServerThread(fake).start()
    fake.url = server.url
    fake.server = server.server  # its connections, for faults that reset one
    yield fake
    server.stop()


@pytest.fixture
def gateway_settings(settings):
    settings.GATEWAY_METRICS_FLUSH_SECONDS = 0.05
    settings.GATEWAY_RETRY_BACKOFF = 0.01
    settings.GATEWAY_RETRY_MAX_WAIT = 0.5
    settings.GATEWAY_UPSTREAM_READ_TIMEOUT = 2.0
    settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT = 1.0
    settings.GATEWAY_KEY_CACHE_SECONDS = 0.3
    settings.GATEWAY_PLAN_CACHE_SECONDS = 0.3
    settings.GATEWAY_MODEL_LIST_CACHE_SECONDS = 0.3
    settings.CREDENTIAL_FAILURE_THRESHOLD = 2
    settings.CREDENTIAL_COOLDOWN_SECONDS = 1
    return settings


@pytest.fixture
def gateway(transactional_db, gateway_settings, upstream):
    """The project's ASGI application under uvicorn; yields its base URL."""
    from config.asgi import application

    upstream.reset()
    server = ServerThread(application, lifespan="on").start()
    yield server
    server.stop()


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


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("Condition not met in time.")


def metrics_rows(count: int, **filters) -> list[ModelMetric]:
    wait_for(lambda: ModelMetric.objects.filter(**filters).count() >= count)
    return list(ModelMetric.objects.filter(**filters).order_by("id"))
