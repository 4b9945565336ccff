"""The gateway served by uvicorn and the fake upstream behind it, as a pytest plugin
(registered in the root ``conftest.py``) for every test package that needs them.

The gateway runs in a thread of the test process, so it uses pytest-django's test
database (``transactional_db``: rows are committed and visible to its threads). On
SQLite that database is a file when such a test is collected: the shared-cache in-memory
database fails concurrent writers with "table is locked" instead of letting them wait.
"""

from __future__ import annotations

import os
import tempfile
import time
from decimal import Decimal

import pytest

from modelhub.models import ModelMetric
from tests.support.upstream import FakeUpstream, ServerThread

PROMPT_PRICE = Decimal("0.000001")
COMPLETION_PRICE = Decimal("0.000002")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request):
    """A file for SQLite's test database when a collected test serves the app in a thread.

    Runs after pytest-django's own suffixes (``_gw0``...): a test name set here is not
    suffixed, so the file name carries the process id, unique per xdist worker.
    """
    from django.conf import settings

    if not any("gateway" in item.fixturenames for item in request.session.items):
        return
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    database.setdefault("TEST", {})
    if not database["TEST"].get("NAME"):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        database["TEST"]["NAME"] = os.path.join(
            tempfile.gettempdir(), f"gateway-tests-{worker}-{os.getpid()}.sqlite3"
        )


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


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("Condition not met in time.")


def metrics_rows(count: int, **filters) -> list[ModelMetric]:
    """The metric rows matching ``filters`` once ``count`` of them are written (the
    gateway records them off the request path)."""
    wait_for(lambda: ModelMetric.objects.filter(**filters).count() >= count)
    return list(ModelMetric.objects.filter(**filters).order_by("id"))
