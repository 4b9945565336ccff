"""Shared fixtures: organizations, users with roles, authenticated API clients."""

from __future__ import annotations

import os

import pytest
from django.db import connection, connections

from modelhub.models import Membership, Organization, Role, User
from tests.support.api import client_for, make_user
from tests.support.environment import REQUIRE_SERVICES

# The gateway under uvicorn, its fake upstream and the webhook receiver serve tests in
# more than one package.
pytest_plugins = ["tests.support.gateway", "tests.support.webhooks"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``services`` need Redis: skipped on a bare machine, failed in CI."""
    if os.environ.get("REDIS_URL") or REQUIRE_SERVICES:
        return
    skip = pytest.mark.skip(reason="needs REDIS_URL (CI starts Redis; see .ci/run)")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _test_database_released(django_db_setup, django_db_blocker):
    """At the end, no session is left on the test database, so that it can be dropped.

    Threads of the gateway and of the servers the tests start hold connections of their
    own, and one still open when the run ends made PostgreSQL refuse to drop the
    database ("being accessed by other users"): the run passed with a warning and left
    the database behind."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        connections.close_all()


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts and ends with an empty cache: with Redis the cache outlives the
    test database, and a stale catalog answer or limit counter would leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def celery_eager():
    """Run queued Celery tasks in-process, also when a real broker is configured."""
    from config.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def org(db) -> Organization:
    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def other_org(db) -> Organization:
    return Organization.objects.create(name="Globex", slug="globex")


@pytest.fixture
def member_factory(db):
    """``member_factory(org, role)`` creates a user with that role in ``org``."""
    counter = {"n": 0}

    def create(organization: Organization, role: str = Role.MEMBER, user: User | None = None):
        if user is None:
            counter["n"] += 1
            user = make_user(f"{role}{counter['n']}-{organization.slug}")
        Membership.objects.create(user=user, organization=organization, role=role)
        return user

    return create


@pytest.fixture
def owner(org, member_factory) -> User:
    return member_factory(org, Role.OWNER)


@pytest.fixture
def admin_user(org, member_factory) -> User:
    return member_factory(org, Role.ADMIN)


@pytest.fixture
def member(org, member_factory) -> User:
    return member_factory(org, Role.MEMBER)


@pytest.fixture
def api_client():
    """``api_client(user, org=None)`` returns a DRF client authenticated with a JWT."""
    return client_for


@pytest.fixture
def db_vendor() -> str:
    return connection.vendor
