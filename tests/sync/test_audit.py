"""The catalog sync writes global models in bulk: no audit entry per row."""

from __future__ import annotations

import copy

import pytest

from modelhub.models import AuditLogEntry, Model, Provider
from tests.support.api import ADMIN_KEY
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db

AUTH = {"HTTP_AUTHORIZATION": f"Bearer {ADMIN_KEY}"}
URL = "/admin/model-sync/provider/openrouter?dry_run=false"


def test_a_sync_through_the_operator_endpoint_logs_no_model(client, admin_key, serve):
    listing = load_response("openrouter.json")
    serve("openrouter", listing)
    assert client.post(URL, REMOTE_ADDR="192.0.2.44", **AUTH).status_code == 200
    assert Model.objects.count() == 38

    # One entry: the new global provider, from the operator's address, by nobody.
    entry = AuditLogEntry.objects.get()
    assert entry.content_type.model == "provider"
    assert entry.object_id == Provider.objects.get(slug="openrouter").pk
    assert (entry.organization_id, entry.actor_id, entry.remote_addr) == (None, None, "192.0.2.44")

    # A re-sync that changes every model's price (bulk update) adds nothing.
    changed = copy.deepcopy(listing)
    for record in changed["data"]:
        record["pricing"]["prompt"] = "0.5"
    serve("openrouter", changed)
    assert client.post(URL, **AUTH).status_code == 200
    assert set(Model.objects.values_list("pricing_prompt", flat=True)) == {0.5}
    assert AuditLogEntry.objects.count() == 1
