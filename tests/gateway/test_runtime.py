"""Prometheus metrics, the lifespan wrapper and the flush of queued rows at shutdown."""

from __future__ import annotations

import asyncio
import gc

import httpx
import openai
import pytest

from gateway.asgi import LifespanApplication
from modelhub.models import ModelMetric
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]


def test_metrics_endpoint_in_prometheus_format(client, gateway, upstream):
    client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    upstream.script("llama-3.1-8b", Action("status", status=500))
    client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'gateway_requests_total{endpoint="chat.completions",model="alpha/llama-3.1-8b",'
        'provider="alpha",status="200"}' in text
    )
    assert "gateway_request_duration_seconds_bucket" in text
    assert (
        'gateway_tokens_total{direction="input",model="alpha/llama-3.1-8b",provider="alpha"}'
        in text
    )
    assert 'gateway_cost_usd_total{model="alpha/llama-3.1-8b",provider="alpha"}' in text
    assert (
        'gateway_upstream_errors_total{kind="http_500",model="alpha/llama-3.1-8b",provider="alpha"}'
        in text
    )


def test_queued_rows_are_written_on_shutdown(gateway_settings, gateway, client_key):
    # A flush interval longer than the test: only the shutdown can write the rows.
    gateway_settings.GATEWAY_METRICS_FLUSH_SECONDS = 3600
    gateway.stop()
    from config.asgi import application
    from tests.support.upstream import ServerThread

    server = ServerThread(application, lifespan="on").start()
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=client_key.raw_key, max_retries=0)
    for _ in range(3):
        sdk.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert ModelMetric.objects.count() == 0
    server.stop()
    assert ModelMetric.objects.count() == 3


def test_lifespan_wrapper_reports_a_failed_startup(monkeypatch):
    async def broken():
        raise RuntimeError("no database")

    monkeypatch.setattr("gateway.runtime.startup", broken)
    sent = []
    messages = iter([{"type": "lifespan.startup"}])

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    asyncio.run(LifespanApplication(None)({"type": "lifespan"}, receive, send))
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]


def test_non_gateway_paths_reach_django(gateway):
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_startup_freezes_what_is_loaded_and_shutdown_thaws_it(transactional_db):
    from gateway import runtime

    async def lifetime():
        await runtime.startup()
        frozen = gc.get_freeze_count()
        await runtime.shutdown()
        return frozen

    assert gc.get_freeze_count() == 0
    # Django, the apps and the gateway's modules: far more than a few objects.
    assert asyncio.run(lifetime()) > 10_000
    assert gc.get_freeze_count() == 0


def _while_running(read):
    """``read()`` between the gateway's startup and its shutdown."""
    from gateway import runtime

    async def lifetime():
        await runtime.startup()
        during = read()
        await runtime.shutdown()
        return during

    return asyncio.run(lifetime())


def test_startup_shortens_the_threads_turns_and_shutdown_restores_them(transactional_db, settings):
    """The database threads hold the interpreter from the event loop for at most
    GATEWAY_SWITCH_INTERVAL_MS at a time while the gateway runs."""
    import sys

    settings.GATEWAY_SWITCH_INTERVAL_MS = 2.0
    before = sys.getswitchinterval()
    assert _while_running(sys.getswitchinterval) == pytest.approx(0.002)
    assert sys.getswitchinterval() == before


def test_startup_collects_young_objects_less_often_and_shutdown_restores_it(transactional_db):
    from gateway import runtime

    before = gc.get_threshold()
    during = _while_running(gc.get_threshold)
    assert during == (runtime.YOUNG_COLLECTION_THRESHOLD, *before[1:])
    assert during[0] > before[0]
    assert gc.get_threshold() == before
