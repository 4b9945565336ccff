"""The audit trail under the ASGI server: the management API's changes are recorded with
their JWT user and address; the gateway's own writes are not."""

from __future__ import annotations

import httpx
import pytest
from rest_framework_simplejwt.tokens import RefreshToken

from modelhub.models import AuditLogEntry, ClientKey, HealthStatus, Role
from tests.support.gateway import metrics_rows, wait_for
from tests.support.upstream import Action

pytestmark = pytest.mark.usefixtures("catalog")

MESSAGES = [{"role": "user", "content": "hi"}]


def test_gateway_requests_write_no_audit_entry(client, upstream, catalog, client_key):
    credential = catalog["credentials"]["alpha"]
    before = AuditLogEntry.objects.count()
    # Two failures make the credential unhealthy (threshold 2); beta serves instead.
    upstream.script("llama-3.1-8b", Action("status", status=500), Action("status", status=500))

    raw = client.chat.completions.with_raw_response.create(
        model="alpha/llama-3.1-8b", messages=MESSAGES
    )
    client.chat.completions.create(model="beta/meta/llama-3.1-8b", messages=MESSAGES)

    assert raw.headers["x-gateway-model"] == "beta/meta/llama-3.1-8b"
    metrics_rows(2)
    wait_for(lambda: ClientKey.objects.get(pk=client_key.client_key.pk).last_used_at)
    credential.refresh_from_db()
    assert credential.health_status == HealthStatus.UNHEALTHY
    assert AuditLogEntry.objects.count() == before


def test_management_api_changes_under_asgi_name_the_jwt_user(gateway, org, member_factory):
    user = member_factory(org, Role.ADMIN)
    token = RefreshToken.for_user(user).access_token
    response = httpx.post(
        f"{gateway.url}/api/modelhub/client-keys/",
        json={"name": "from-asgi"},
        headers={"Authorization": f"Bearer {token}", "X-Organization": org.slug},
    )
    assert response.status_code == 201, response.text

    entry = AuditLogEntry.objects.get_for_object(
        ClientKey.objects.get(pk=response.json()["id"])
    ).get()
    assert (entry.actor_id, entry.remote_addr, entry.organization_id) == (
        user.pk,
        "127.0.0.1",
        org.pk,
    )
