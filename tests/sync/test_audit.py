"""The catalog sync writes no audit entry: its record is the SyncRun, and it writes
global models in bulk (no entry per row)."""

from __future__ import annotations

import copy

import pytest

from modelhub.models import AuditLogEntry, Model, SyncRun
from tests.support.api import ADMIN_KEY
from tests.support.recorded import load_response

pytestmark = pytest.mark.django_db

AUTH = {"HTTP_AUTHORIZATION": f"Bearer {ADMIN_KEY}"}
URL = "/admin/model-sync/provider/openrouter?dry_run=false"


def test_a_sync_through_the_operator_endpoint_writes_no_entry(client, admin_key, serve):
    listing = load_response("openrouter.json")
    serve("openrouter", listing)
    assert client.post(URL, REMOTE_ADDR="192.0.2.44", **AUTH).status_code == 200
    assert Model.objects.count() == 38
    assert SyncRun.objects.get().trigger == "admin-api"
    assert not AuditLogEntry.objects.exists()

    # A re-sync that changes every model's price (bulk update) adds nothing.
    changed = copy.deepcopy(listing)
    for record in changed["data"]:
        record["pricing"]["prompt"] = "0.5"
    serve("openrouter", changed)
    assert client.post(URL, **AUTH).status_code == 200
    assert set(Model.objects.values_list("pricing_prompt", flat=True)) == {0.5}
    assert not AuditLogEntry.objects.exists()
