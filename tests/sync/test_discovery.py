"""Model discovery for private providers: POST /api/modelhub/providers/{id}/discover/."""

from __future__ import annotations

import pytest
import requests
import responses

from modelhub.models import ApiFormat, Model, User
from sync import tasks
from tests.support.api import API, client_for
from tests.support.builders import db_state, make_credential, make_model, make_provider

pytestmark = pytest.mark.django_db

BASE = "http://127.0.0.1:8123/v1"
SECRET = "sk-private-0123456789abcd"


def url(provider) -> str:
    return f"{API}/providers/{provider.pk}/discover/"


@pytest.fixture
def private(org):
    provider = make_provider(org, slug="vllm", base_url=BASE)
    make_credential(org, provider, secret=SECRET)
    return provider


@pytest.fixture
def admin_client(org, admin_user):
    return client_for(admin_user, org)


def openai_list(*ids: str) -> dict:
    return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "me"} for i in ids]}


def active_ids(provider) -> set[str]:
    return set(
        Model.objects.filter(provider=provider, is_active=True).values_list(
            "provider_model_id", flat=True
        )
    )


def test_discovers_an_openai_compatible_endpoint(admin_client, private, http):
    http.add(responses.GET, f"{BASE}/models", json=openai_list("llama-3-8b", "qwen-2"))
    response = admin_client.post(url(private))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 0,
        "total": 2,
    }
    assert active_ids(private) == {"llama-3-8b", "qwen-2"}
    # The organization's credential, decrypted, is what the endpoint sees.
    assert http.calls[0].request.headers["Authorization"] == f"Bearer {SECRET}"
    again = admin_client.post(url(private))
    assert again.json()["unchanged"] == 2 and again.json()["created"] == 0


def test_discovers_an_ollama_server(org, admin_client, http):
    provider = make_provider(
        org, slug="ollama-lab", base_url=BASE, api_format=ApiFormat.OLLAMA, requires_api_key=False
    )
    tags = {
        "models": [{"name": "llama3:8b", "model": "llama3:8b"}, {"name": "phi3", "model": "phi3"}]
    }
    http.add(responses.GET, "http://127.0.0.1:8123/api/tags", json=tags)
    response = admin_client.post(url(provider))
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 2
    assert active_ids(provider) == {"llama3:8b", "phi3"}
    assert "Authorization" not in http.calls[0].request.headers


def test_vanished_models_are_deactivated(admin_client, private, http):
    make_model(private, "old-model")
    make_model(private, "kept")
    http.add(responses.GET, f"{BASE}/models", json=openai_list("kept", "new"))
    response = admin_client.post(url(private))
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["deactivated"], body["total"]) == (1, 1, 2)
    assert active_ids(private) == {"kept", "new"}
    assert Model.objects.get(provider=private, provider_model_id="old-model").is_active is False


FAULTS = {
    "unreachable": dict(body=requests.ConnectionError("refused")),
    "unauthorized": dict(json={"error": "bad key"}, status=401),
    "garbage": dict(body="<html>proxy login</html>", status=200),
    "empty": dict(json={"object": "list", "data": []}),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_faults_leave_rows_intact(admin_client, private, http, fault):
    make_model(private, "kept")
    before = db_state()
    http.add(responses.GET, f"{BASE}/models", **FAULTS[fault])
    response = admin_client.post(url(private))
    assert response.status_code == 502
    assert "no model was changed" in response.json()["detail"]
    assert SECRET not in response.content.decode()
    assert db_state() == before
    assert active_ids(private) == {"kept"}


def test_no_credential_is_a_400(org, admin_client, http):
    provider = make_provider(org, slug="keyless", base_url=BASE)
    response = admin_client.post(url(provider))
    assert response.status_code == 400
    assert "credential" in response.json()["detail"]
    assert len(http.calls) == 0


def test_another_organizations_provider_is_404(admin_client, other_org, http):
    theirs = make_provider(other_org, slug="theirs", base_url=BASE)
    make_credential(other_org, theirs, secret=SECRET)
    response = admin_client.post(url(theirs))
    assert response.status_code == 404
    assert len(http.calls) == 0


def test_a_member_is_403(org, member, private, http):
    response = client_for(member, org).post(url(private))
    assert response.status_code == 403
    assert len(http.calls) == 0


def test_a_global_provider_is_refused(admin_client, http):
    provider = make_provider(None, slug="globalprov", base_url=BASE)
    response = admin_client.post(url(provider))
    assert response.status_code == 403
    assert "private providers" in response.json()["detail"]
    assert len(http.calls) == 0


def test_metadata_address_is_refused_without_a_connection(org, admin_client, http):
    provider = make_provider(org, slug="meta", base_url="http://169.254.169.254/latest")
    make_credential(org, provider, secret=SECRET)
    before = db_state()
    response = admin_client.post(url(provider))
    assert response.status_code == 400
    assert "metadata" in response.json()["detail"]
    assert len(http.calls) == 0
    assert db_state() == before


def test_host_resolving_to_a_metadata_address_is_refused(org, admin_client, http, monkeypatch):
    provider = make_provider(org, slug="rebind", base_url="http://models.example.test/v1")
    make_credential(org, provider, secret=SECRET)
    monkeypatch.setattr(
        "socket.getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("169.254.169.254", 80))]
    )
    response = admin_client.post(url(provider))
    assert response.status_code == 400
    assert "outbound address policy" in response.json()["detail"]
    assert len(http.calls) == 0


def test_task_discovers_and_skips_a_vanished_provider(org, private, http):
    http.add(responses.GET, f"{BASE}/models", json=openai_list("a"))
    result = tasks.discover_provider.apply(args=(private.pk, org.pk)).get()
    assert result == {
        "status": "success",
        "created": 1,
        "updated": 0,
        "deactivated": 0,
        "unchanged": 0,
        "total": 1,
    }
    private_pk = private.pk
    private.delete()
    assert tasks.discover_provider.apply(args=(private_pk, org.pk)).get() == {"status": "gone"}


def test_admin_action_discovers_private_providers_and_skips_global_ones(client, private, http):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-root-123"))
    global_provider = make_provider(None, slug="globalprov", base_url=BASE)
    http.add(responses.GET, f"{BASE}/models", json=openai_list("m1", "m2"))
    response = client.post(
        "/admin/modelhub/provider/",
        {"action": "discover_models", "_selected_action": [private.pk, global_provider.pk]},
        follow=True,
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Vllm: created 2, updated 0, deactivated 0, unchanged 0, total 2." in content
    assert "1 global provider(s) skipped" in content
    assert active_ids(private) == {"m1", "m2"}
    assert len(http.calls) == 1
