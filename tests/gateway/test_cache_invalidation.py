"""Writes reach the gateway's caches at once: keys, rules, credentials, models.

The caches here live 300 s, so a test that passes proves the entry was dropped by the
write, not that it expired. The control test shows the same write made behind the
services' back (no notice) is not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from gateway import runtime
from modelhub.invalidation import channel_name, tenant_changed
from modelhub.models import (
    ClientKey,
    HealthStatus,
    Model,
    ProviderCredential,
    Role,
    RoutingRule,
)
from modelhub.services import routing_rule_save
from tests.support.api import make_user
from tests.support.gateway import wait_for
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]
API = "/api/modelhub"
LONG = 300.0


@pytest.fixture
def gateway_settings(gateway_settings):
    gateway_settings.GATEWAY_KEY_CACHE_SECONDS = LONG
    gateway_settings.GATEWAY_PLAN_CACHE_SECONDS = LONG
    gateway_settings.GATEWAY_MODEL_LIST_CACHE_SECONDS = LONG
    # A subscriber that has not subscribed yet (with Redis) must not hide a missed notice.
    gateway_settings.GATEWAY_CACHE_DISCONNECTED_SECONDS = LONG
    return gateway_settings


@pytest.fixture
def client(client, request):
    """The SDK, once the gateway listens for notices (with Redis: once subscribed)."""
    if "unreachable_redis" not in request.fixturenames:
        wait_for(lambda: runtime._runtime is not None and runtime._runtime.changes.listening)
    return client


@pytest.fixture
def owner_api(org, member_factory, api_client):
    return api_client(member_factory(org, Role.OWNER), org)


@pytest.fixture
def staff(transactional_db) -> Client:
    client = Client()
    client.force_login(make_user("operator", is_staff=True, is_superuser=True))
    return client


def served_model(sdk, model="alpha/llama-3.1-8b") -> str:
    raw = sdk.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    return raw.headers["x-gateway-model"]


def status_of(sdk, model="alpha/llama-3.1-8b") -> int:
    try:
        sdk.chat.completions.create(model=model, messages=MESSAGES)
    except openai.APIStatusError as error:
        return error.status_code
    return 200


def key_of(client_key) -> ClientKey:
    return client_key.client_key


# --- The caches hold -----------------------------------------------------------------------


def test_a_write_behind_the_services_back_is_not_seen(client, client_key):
    assert status_of(client) == 200
    ClientKey.objects.filter(pk=key_of(client_key).pk).update(revoked_at=timezone.now())
    time.sleep(0.5)
    # Still cached: what the other tests see is the notice of the write, not expiry.
    assert status_of(client) == 200


# --- Through the management API ------------------------------------------------------------


def test_revoked_key_is_refused_by_the_next_request(client, client_key, owner_api):
    assert status_of(client) == 200
    response = owner_api.post(f"{API}/client-keys/{key_of(client_key).pk}/revoke/")
    assert response.status_code == 200
    with pytest.raises(openai.AuthenticationError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.code == "revoked_api_key"


def test_deleted_key_is_refused_by_the_next_request(client, client_key, owner_api):
    assert status_of(client) == 200
    assert client.models.list().data
    response = owner_api.delete(f"{API}/client-keys/{key_of(client_key).pk}/")
    assert response.status_code == 204
    assert status_of(client) == 401
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_expiry_moved_into_the_past_ends_the_key(client, client_key, owner_api):
    assert status_of(client) == 200
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = owner_api.patch(
        f"{API}/client-keys/{key_of(client_key).pk}/", {"expires_at": past}, format="json"
    )
    assert response.status_code == 200, response.content
    with pytest.raises(openai.AuthenticationError) as error:
        client.chat.completions.create(model="alpha/llama-3.1-8b", messages=MESSAGES)
    assert error.value.code == "expired_api_key"


def test_changed_allowed_models_apply_to_the_next_request(client, client_key, owner_api):
    assert status_of(client) == 200
    assert "alpha/llama-3.1-8b" in {m.id for m in client.models.list().data}
    response = owner_api.patch(
        f"{API}/client-keys/{key_of(client_key).pk}/",
        {"allowed_models": ["anthropic/*"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert status_of(client) == 403
    assert {m.id for m in client.models.list().data} == {"anthropic/claude-haiku"}


def test_disabled_credential_leaves_the_next_plan(client, catalog, owner_api):
    assert served_model(client) == "alpha/llama-3.1-8b"
    credential = catalog["credentials"]["alpha"]
    response = owner_api.patch(
        f"{API}/api-keys/{credential.pk}/", {"is_active": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert served_model(client) == "beta/meta/llama-3.1-8b"


def test_deleted_routing_rule_leaves_the_next_plan(client, org, catalog, owner_api):
    rule = routing_rule_save(
        organization=org,
        name="fast",
        match_model="fast",
        targets=[{"model": catalog["models"]["beta"]}],
    )
    assert served_model(client, "fast") == "beta/meta/llama-3.1-8b"
    assert owner_api.delete(f"{API}/routing-rules/{rule.pk}/").status_code == 204
    assert status_of(client, "fast") == 404


def test_new_routing_rule_applies_to_the_next_request(client, org, catalog, owner_api):
    assert served_model(client) == "alpha/llama-3.1-8b"
    body = {
        "name": "prefer beta",
        "match_model": "alpha/llama-3.1-8b",
        "targets": [{"model": catalog["models"]["beta"].pk}],
    }
    response = owner_api.post(f"{API}/routing-rules/", body, format="json")
    assert response.status_code == 201, response.content
    assert served_model(client) == "beta/meta/llama-3.1-8b"


def test_staff_deactivating_a_global_model_applies_to_the_next_request(
    client, org, catalog, member_factory, api_client
):
    staff_user = make_user("catalog-staff", is_staff=True)
    staff_api = api_client(member_factory(org, Role.ADMIN, user=staff_user), org)
    assert served_model(client) == "alpha/llama-3.1-8b"
    response = staff_api.patch(
        f"{API}/models/{catalog['models']['alpha'].pk}/", {"is_active": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert served_model(client) == "beta/meta/llama-3.1-8b"


# --- Through the admin ---------------------------------------------------------------------


def admin_action(staff: Client, model: str, action: str, *pks: int) -> None:
    response = staff.post(
        f"/admin/modelhub/{model}/", {"action": action, "_selected_action": [str(pk) for pk in pks]}
    )
    assert response.status_code == 302, response.content


def test_admin_revoke_action(client, client_key, staff):
    assert status_of(client) == 200
    admin_action(staff, "clientkey", "revoke", key_of(client_key).pk)
    assert status_of(client) == 401


def test_admin_delete_of_a_key(client, client_key, staff):
    assert status_of(client) == 200
    pk = key_of(client_key).pk
    response = staff.post(f"/admin/modelhub/clientkey/{pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert status_of(client) == 401


def test_admin_bulk_delete_of_keys(client, client_key, staff):
    assert status_of(client) == 200
    staff.post(
        "/admin/modelhub/clientkey/",
        {"action": "delete_selected", "_selected_action": [key_of(client_key).pk], "post": "yes"},
    )
    assert not ClientKey.objects.exists()
    assert status_of(client) == 401


def test_admin_disable_credentials_action(client, catalog, staff):
    assert served_model(client) == "alpha/llama-3.1-8b"
    admin_action(staff, "providercredential", "disable", catalog["credentials"]["alpha"].pk)
    assert served_model(client) == "beta/meta/llama-3.1-8b"


def test_admin_reset_health_action(client, catalog, staff):
    credential = catalog["credentials"]["alpha"]
    ProviderCredential.objects.filter(pk=credential.pk).update(
        health_status=HealthStatus.UNHEALTHY,
        consecutive_failures=5,
        cooldown_until=timezone.now() + timedelta(hours=1),
    )
    assert served_model(client) == "beta/meta/llama-3.1-8b"
    admin_action(staff, "providercredential", "reset_health", credential.pk)
    assert served_model(client) == "alpha/llama-3.1-8b"


def test_admin_deactivate_models_action(client, catalog, staff):
    assert served_model(client) == "alpha/llama-3.1-8b"
    admin_action(staff, "model", "deactivate", catalog["models"]["alpha"].pk)
    assert not Model.objects.get(pk=catalog["models"]["alpha"].pk).is_active
    assert served_model(client) == "beta/meta/llama-3.1-8b"


def test_admin_delete_of_a_routing_rule(client, org, catalog, staff):
    rule = routing_rule_save(
        organization=org,
        name="fast",
        match_model="fast",
        targets=[{"model": catalog["models"]["beta"]}],
    )
    assert served_model(client, "fast") == "beta/meta/llama-3.1-8b"
    response = staff.post(f"/admin/modelhub/routingrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not RoutingRule.objects.exists()
    assert status_of(client, "fast") == 404


def test_admin_delete_of_the_organization(client, org, staff):
    assert status_of(client) == 200
    response = staff.post(f"/admin/modelhub/organization/{org.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert status_of(client) == 401


# --- The gateway's own writes --------------------------------------------------------------


def test_credential_health_changes_announce_themselves(client, catalog, upstream):
    """A failure recorded by the gateway publishes the change (other workers drop their
    plans); here the change arrives as a notice, as it would from another worker."""
    heard = []

    def listen(sender, organization_id=None, client_key_hash=None, **kwargs):
        heard.append(organization_id)

    tenant_changed.connect(listen, weak=False, dispatch_uid="test-listen")
    try:
        upstream.script("llama-3.1-8b", Action("status", status=500), Action("status", status=500))
        served_model(client)
        wait_for(lambda: catalog["credentials"]["alpha"].organization_id in heard)
    finally:
        tenant_changed.disconnect(dispatch_uid="test-listen")


# --- Without Redis to hear them --------------------------------------------------------------


@pytest.fixture
def unreachable_redis(gateway_settings):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway_settings.REDIS_URL = f"redis://127.0.0.1:{port}/3"
    gateway_settings.GATEWAY_LIMIT_BACKEND = "database"
    gateway_settings.GATEWAY_CACHE_DISCONNECTED_SECONDS = 0.5
    return gateway_settings


def test_unreachable_redis_does_not_fail_the_write(
    unreachable_redis, client, client_key, owner_api, caplog
):
    assert status_of(client) == 200
    with caplog.at_level(logging.WARNING, logger="modelhub.invalidation"):
        started = time.monotonic()
        response = owner_api.post(f"{API}/client-keys/{key_of(client_key).pk}/revoke/")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2
    assert "Could not publish" in caplog.text
    # This process heard it all the same.
    assert status_of(client) == 401


def test_unreachable_redis_bounds_staleness_by_the_short_ttl(unreachable_redis, client, client_key):
    assert status_of(client) == 200
    ClientKey.objects.filter(pk=key_of(client_key).pk).update(revoked_at=timezone.now())
    started = time.monotonic()
    while status_of(client) == 200:
        assert time.monotonic() - started < 3, "the cache outlived its disconnected TTL"
        time.sleep(0.05)
    assert time.monotonic() - started < 0.5 + 1.0


# --- Another gateway process, through Redis ----------------------------------------------------


def _database_url() -> str:
    database = connection.settings_dict
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    return (
        f"postgres://{database['USER']}{password}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}"
    )


def _subscribers() -> int:
    import redis

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        [(_, count)] = client.pubsub_numsub(channel_name(django_settings.REDIS_URL))
        return int(count)
    finally:
        client.close()


@pytest.fixture
def second_gateway(transactional_db, gateway_settings):
    """The gateway in another process (uvicorn), on the same database and Redis."""
    if connection.vendor != "postgresql" or not django_settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis shared with a second process")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    before = _subscribers()
    environment = {
        # Not the xdist worker's name: REDIS_URL below is already the worker's database,
        # and the settings would move it up by the worker's number once more.
        **{name: value for name, value in os.environ.items() if name != "PYTEST_XDIST_WORKER"},
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "GATEWAY_KEY_CACHE_SECONDS": str(LONG),
        "GATEWAY_PLAN_CACHE_SECONDS": str(LONG),
        "GATEWAY_MODEL_LIST_CACHE_SECONDS": str(LONG),
        "GATEWAY_CACHE_DISCONNECTED_SECONDS": str(LONG),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application"]
        + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=Path(django_settings.BASE_DIR),
        env=environment,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the second gateway exited"
            assert time.monotonic() < deadline, "the second gateway did not start"
            try:
                started = httpx.get(f"{url}/v1/models", timeout=1).status_code == 401
            except httpx.TransportError:
                started = False
            if started and _subscribers() > before:
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def seconds_until(predicate, timeout: float = 3.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "not seen in time"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.services
def test_another_process_sees_a_revocation_within_a_second(second_gateway, client_key, owner_api):
    headers = {"Authorization": f"Bearer {client_key.raw_key}"}

    def status() -> int:
        return httpx.get(f"{second_gateway}/v1/models", headers=headers, timeout=5).status_code

    assert status() == 200
    response = owner_api.post(f"{API}/client-keys/{key_of(client_key).pk}/revoke/")
    assert response.status_code == 200
    assert seconds_until(lambda: status() == 401) < 1.0


@pytest.mark.services
def test_another_process_sees_changed_allowed_models_within_a_second(
    second_gateway, client_key, owner_api
):
    headers = {"Authorization": f"Bearer {client_key.raw_key}"}

    def ids() -> set[str]:
        response = httpx.get(f"{second_gateway}/v1/models", headers=headers, timeout=5)
        return {entry["id"] for entry in response.json()["data"]}

    assert "alpha/llama-3.1-8b" in ids()
    response = owner_api.patch(
        f"{API}/client-keys/{key_of(client_key).pk}/",
        {"allowed_models": ["anthropic/*"]},
        format="json",
    )
    assert response.status_code == 200
    assert seconds_until(lambda: ids() == {"anthropic/claude-haiku"}) < 1.0


@pytest.mark.services
def test_another_process_drops_a_credential_this_one_found_failing(
    second_gateway, gateway_settings, client, client_key, upstream
):
    """The gateway's own health updates reach the other workers' plans."""
    gateway_settings.CREDENTIAL_COOLDOWN_SECONDS = 300
    headers = {"Authorization": f"Bearer {client_key.raw_key}"}
    body = {"model": "alpha/llama-3.1-8b", "messages": MESSAGES}

    def served_there() -> str:
        response = httpx.post(
            f"{second_gateway}/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.headers["x-gateway-model"]

    assert served_there() == "alpha/llama-3.1-8b"
    # Here, in this process, alpha's upstream fails twice: the credential cools down.
    upstream.script("llama-3.1-8b", Action("status", status=500), Action("status", status=500))
    assert served_model(client) == "beta/meta/llama-3.1-8b"
    assert seconds_until(lambda: served_there() == "beta/meta/llama-3.1-8b") < 1.0


@pytest.mark.services
def test_the_subscriber_reconnects_after_losing_redis(client, client_key, owner_api):
    import redis

    listener = runtime._runtime.changes
    admin = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        name = f"modelhub-gateway-{os.getpid()}"
        ids = [c["id"] for c in admin.client_list(_type="pubsub") if c["name"] == name]
        assert ids
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)
    finally:
        admin.close()
    wait_for(lambda: not listener.subscribed, timeout=5)
    wait_for(lambda: listener.subscribed, timeout=5)
    assert status_of(client) == 200
    owner_api.post(f"{API}/client-keys/{key_of(client_key).pk}/revoke/")
    assert status_of(client) == 401


def test_a_load_that_read_old_rows_is_not_stored():
    """A load already running when its entry is dropped must not put the old row back."""
    import asyncio

    from gateway.runtime import TTLCache

    async def scenario():
        cache = TTLCache(ttl=LONG)
        release = asyncio.Event()

        async def slow_load():
            await release.wait()
            return "old"

        pending = asyncio.ensure_future(cache.get_or_load("key", slow_load))
        await asyncio.sleep(0)
        cache.discard("key")
        release.set()
        assert await pending == "old"
        assert await cache.get_or_load("key", lambda: asyncio.sleep(0, "new")) == "new"

    asyncio.run(scenario())


def test_an_entry_near_its_end_is_served_while_it_loads_again():
    """A reader in the last quarter of an entry's life gets it at once and starts the
    reload; nobody waits for it, and a reload that fails leaves the entry as it was."""
    import asyncio

    from gateway.runtime import TTLCache

    async def scenario():
        cache = TTLCache(ttl=0.4)
        assert await cache.get_or_load("key", lambda: asyncio.sleep(0, "first")) == "first"
        release = asyncio.Event()
        loads = []

        async def slow_load():
            loads.append("reload")
            await release.wait()
            return "second"

        # Early in its life: served, no reload.
        assert await cache.get_or_load("key", slow_load) == "first"
        assert loads == []
        await asyncio.sleep(0.32)
        # Near its end: served at once, one reload started for every reader.
        for _ in range(3):
            assert await asyncio.wait_for(cache.get_or_load("key", slow_load), 0.05) == "first"
        assert loads == ["reload"]
        release.set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert await cache.get_or_load("key", slow_load) == "second"

        async def failing_load():
            raise RuntimeError("database down")

        await asyncio.sleep(0.32)
        assert await cache.get_or_load("key", failing_load) == "second"
        await asyncio.sleep(0)
        assert await cache.get_or_load("key", failing_load) == "second"
        await asyncio.sleep(0.1)
        # Expired: the reader loads it, and sees the failure.
        with pytest.raises(RuntimeError):
            await cache.get_or_load("key", failing_load)

    asyncio.run(scenario())


def test_a_subscriber_that_loses_its_cancellation_still_stops(caplog):
    """redis-py can take a cancellation for its own read timeout and read on: the
    shutdown cancels the subscriber again rather than wait for it for ever. One that
    never stops is left behind after a bounded wait, with a warning."""
    from gateway import invalidation

    async def losing_one_cancellation(release):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        await asyncio.Event().wait()

    async def stopping_only_when_released(release):
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    async def close_with(subscriber):
        release = asyncio.Event()
        listener = invalidation.ChangeListener(runtime=None)
        listener.task = asyncio.get_running_loop().create_task(subscriber(release))
        await asyncio.sleep(0)
        started = time.monotonic()
        await asyncio.wait_for(listener.close(), timeout=invalidation.CLOSE_SECONDS + 5)
        took = time.monotonic() - started
        state = "cancelled" if listener.task.cancelled() else listener.task.done()
        release.set()  # let the test's loop end
        await asyncio.wait({listener.task}, timeout=1)
        return state, took

    state, took = asyncio.run(close_with(losing_one_cancellation))
    assert state == "cancelled" and took < 1
    with caplog.at_level(logging.WARNING, logger="gateway.invalidation"):
        state, took = asyncio.run(close_with(stopping_only_when_released))
    assert state is False and took >= invalidation.CLOSE_SECONDS
    assert "did not stop" in caplog.text
