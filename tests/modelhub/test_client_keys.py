"""Client keys: shown once, stored as a SHA-256 digest, listed by prefix, revocable."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from modelhub.models import ClientKey
from tests.support.api import API
from tests.support.builders import db_state, make_client_key

KEYS = f"{API}/client-keys/"


def test_create_returns_the_full_key_once_and_stores_its_digest(org, admin_user, admin_client):
    response = admin_client.post(
        KEYS,
        {
            "name": "backend",
            "allowed_models": ["gpt-4o", "anthropic/*"],
            "rate_limit_rpm": 60,
            "rate_limit_tpm": 100000,
            "budget_amount": "25.50",
            "budget_period": "week",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    key = body["key"]
    assert key.startswith("mh-") and len(key) > 40
    assert body["prefix"] == key[:11]
    stored = ClientKey.objects.get()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert stored.organization == org and stored.created_by == admin_user
    assert stored.allowed_models == ["gpt-4o", "anthropic/*"]
    assert stored.budget_amount == Decimal("25.5") and stored.budget_period == "week"
    assert (stored.rate_limit_rpm, stored.rate_limit_tpm) == (60, 100000)
    assert key not in str(ClientKey.objects.values().get())
    assert body["is_active"] is True


def test_each_key_is_different(admin_client):
    keys = {
        admin_client.post(KEYS, {"name": f"k{i}"}, format="json").json()["key"] for i in range(3)
    }
    assert len(keys) == 3
    assert ClientKey.objects.values("key_hash").distinct().count() == 3


def test_list_and_retrieve_show_the_prefix_only(org, admin_client, member_client):
    key = admin_client.post(KEYS, {"name": "backend"}, format="json").json()["key"]
    stored = ClientKey.objects.get()
    for response in (member_client.get(KEYS), member_client.get(f"{KEYS}{stored.pk}/")):
        assert response.status_code == 200
        text = response.content.decode()
        assert key not in text
        assert stored.key_hash not in text
        assert "key_hash" not in text
        assert '"key"' not in text
    assert member_client.get(f"{KEYS}{stored.pk}/").json()["prefix"] == key[:11]


def test_update_changes_limits_but_not_the_key(org, admin_client):
    client_key = make_client_key(org, name="old")
    digest, prefix = client_key.key_hash, client_key.prefix
    response = admin_client.patch(
        f"{KEYS}{client_key.pk}/",
        {"name": "new", "rate_limit_rpm": 5, "prefix": "mh-hacked", "key_hash": "0" * 64},
        format="json",
    )
    assert response.status_code == 200
    assert "key" not in response.json()
    client_key.refresh_from_db()
    assert (client_key.name, client_key.rate_limit_rpm) == ("new", 5)
    assert (client_key.key_hash, client_key.prefix) == (digest, prefix)


def test_revoke(org, admin_client):
    client_key = make_client_key(org)
    response = admin_client.post(f"{KEYS}{client_key.pk}/revoke/")
    assert response.status_code == 200
    body = response.json()
    assert body["revoked_at"] is not None and body["is_active"] is False
    client_key.refresh_from_db()
    revoked_at = client_key.revoked_at
    assert revoked_at is not None and not client_key.is_usable()
    # Revoking again keeps the first revocation time.
    admin_client.post(f"{KEYS}{client_key.pk}/revoke/")
    client_key.refresh_from_db()
    assert client_key.revoked_at == revoked_at


def test_revoke_is_for_admins(org, member_client):
    client_key = make_client_key(org)
    before = db_state()
    assert member_client.post(f"{KEYS}{client_key.pk}/revoke/").status_code == 403
    assert db_state() == before


def test_revoke_another_organizations_key_is_404(other_org, admin_client):
    client_key = make_client_key(other_org)
    assert admin_client.post(f"{KEYS}{client_key.pk}/revoke/").status_code == 404
    client_key.refresh_from_db()
    assert client_key.revoked_at is None


def test_revoked_filter(org, admin_client):
    live = make_client_key(org)
    dead = make_client_key(org)
    admin_client.post(f"{KEYS}{dead.pk}/revoke/")
    ids = lambda r: [row["id"] for row in r.json()["results"]]  # noqa: E731
    assert ids(admin_client.get(KEYS, {"revoked": "true"})) == [dead.pk]
    assert ids(admin_client.get(KEYS, {"revoked": "false"})) == [live.pk]


def test_expiry(org, admin_client):
    soon = timezone.now() + timedelta(hours=1)
    response = admin_client.post(
        KEYS, {"name": "temp", "expires_at": soon.isoformat()}, format="json"
    )
    assert response.status_code == 201
    client_key = ClientKey.objects.get()
    assert client_key.expires_at == soon
    assert client_key.is_usable()
    assert not client_key.is_usable(now=soon + timedelta(seconds=1))
    ClientKey.objects.filter(pk=client_key.pk).update(expires_at=timezone.now() - timedelta(1))
    assert admin_client.get(f"{KEYS}{client_key.pk}/").json()["is_active"] is False


def test_a_key_cannot_be_created_already_expired(admin_client):
    past = timezone.now() - timedelta(minutes=1)
    response = admin_client.post(KEYS, {"name": "x", "expires_at": past.isoformat()}, format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()
    assert not ClientKey.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "x", "allowed_models": "gpt-4o"},
        {"name": "x", "allowed_models": [1, 2]},
        {"name": "x", "allowed_models": {"a": 1}},
        {"name": "x", "rate_limit_rpm": -1},
        {"name": "x", "rate_limit_rpm": 10**30},
        {"name": "x", "rate_limit_tpm": "fast"},
        {"name": "x", "budget_amount": "-5"},
        {"name": "x", "budget_amount": "1e30"},
        {"name": "x", "budget_amount": "lots"},
        {"name": "x", "budget_period": "decade"},
        {"name": "x", "expires_at": "tomorrow"},
    ],
)
def test_invalid_keys_are_400(payload, admin_client):
    response = admin_client.post(KEYS, payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()
    assert not ClientKey.objects.exists()
