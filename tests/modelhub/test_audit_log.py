"""The audit trail: every change through the management API and the admin is recorded
with its actor, address and before/after values; tenants read only their own; secrets
never appear."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modelhub import services
from modelhub.audit import AUDITED_MODELS
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    HealthStatus,
    Membership,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    Role,
    RoutingRule,
    RoutingTarget,
)
from tests.support.api import API, client_for, make_user
from tests.support.builders import (
    make_client_key,
    make_credential,
    make_model,
    make_provider,
    make_rule,
)

ADDRESS = "203.0.113.7"
CREATE, UPDATE, DELETE = (
    AuditLogEntry.Action.CREATE,
    AuditLogEntry.Action.UPDATE,
    AuditLogEntry.Action.DELETE,
)


def entries_for(obj) -> list[AuditLogEntry]:
    return list(AuditLogEntry.objects.get_for_object(obj).order_by("id"))


def only_entry(model, action, **filters) -> AuditLogEntry:
    found = AuditLogEntry.objects.get_for_model(model).filter(action=action, **filters)
    assert found.count() == 1, list(found.values("object_repr", "changes"))
    return found.get()


def assert_made_by(entry: AuditLogEntry, user, organization, address=ADDRESS) -> None:
    assert entry.actor_id == user.pk
    assert entry.remote_addr == address
    assert entry.organization_id == (organization.pk if organization else None)


def normal(value):
    """Prices are stored as text and shown as text or numbers: compare them as Decimals."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return value


def send(client, method, url, payload=None):
    return getattr(client, method)(url, payload, format="json", REMOTE_ADDR=ADDRESS)


# --- Through the management API (JWT) ------------------------------------------------------


def test_organization_create_update_delete(owner, org):
    client = client_for(owner)
    created = send(client, "post", f"{API}/organizations/", {"name": "Initech"})
    assert created.status_code == 201, created.json()
    initech = Organization.objects.get(slug="initech")
    entry = only_entry(Organization, CREATE, object_id=initech.pk)
    assert_made_by(entry, owner, initech)
    assert entry.changes["name"] == [None, "Initech"]
    # The owner's membership is part of the same change.
    membership = only_entry(Membership, CREATE, organization=initech)
    assert_made_by(membership, owner, initech)

    url = f"{API}/organizations/initech/"
    assert send(client, "patch", url, {"name": "Initrode"}).status_code == 200
    entry = only_entry(Organization, UPDATE, object_id=initech.pk)
    assert_made_by(entry, owner, initech)
    assert entry.changes == {"name": ["Initech", "Initrode"]}

    assert send(client, "delete", url).status_code == 204
    entry = only_entry(Organization, DELETE, object_id=initech.pk)
    # The history outlives the organization: it still names it.
    assert_made_by(entry, owner, initech)
    assert only_entry(Membership, DELETE, organization_id=initech.pk).actor_id == owner.pk


def test_member_add_change_remove(owner, org):
    client = client_for(owner, org)
    newcomer = make_user("newcomer", email="new@example.com")
    url = f"{API}/organizations/{org.slug}/members/"

    response = send(client, "post", url, {"username": "newcomer"})
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    assert_made_by(only_entry(Membership, CREATE, object_id=pk), owner, org)

    assert send(client, "patch", f"{url}{pk}/", {"role": "admin"}).status_code == 200
    entry = only_entry(Membership, UPDATE, object_id=pk)
    assert_made_by(entry, owner, org)
    assert entry.changes == {"role": ["member", "admin"]}

    assert send(client, "delete", f"{url}{pk}/").status_code == 204
    entry = only_entry(Membership, DELETE, object_id=pk)
    assert_made_by(entry, owner, org)
    assert str(newcomer) in entry.object_repr


# (list path, model, create payload(org), update payload)
CATALOG_AND_KEYS = [
    pytest.param(
        "providers",
        Provider,
        lambda org: {"name": "Local", "slug": "local", "base_url": "http://localhost:1"},
        {"name": "Renamed"},
        id="providers",
    ),
    pytest.param(
        "models",
        Model,
        lambda org: {
            "provider": make_provider(org, slug="mine").pk,
            "provider_model_id": "m1",
            "model_name": "M1",
            "pricing_prompt": "0.000001",
        },
        {"pricing_prompt": "0.000002"},
        id="models",
    ),
    pytest.param(
        "api-keys",
        ProviderCredential,
        lambda org: {
            "provider": make_provider(org, slug="mine").pk,
            "name": "main",
            "secret": "sk-live-created-0123456789",
        },
        {"priority": 5},
        id="api-keys",
    ),
    pytest.param(
        "client-keys",
        ClientKey,
        lambda org: {"name": "app"},
        {"rate_limit_rpm": 60},
        id="client-keys",
    ),
    pytest.param(
        "routing-rules",
        RoutingRule,
        lambda org: {
            "name": "fast",
            "match_model": "fast-*",
            "targets": [{"model": make_model(make_provider(org, slug="mine"), "m1").pk}],
        },
        {"priority": 5},
        id="routing-rules",
    ),
]


@pytest.mark.parametrize(("path", "model", "create", "update"), CATALOG_AND_KEYS)
def test_create_update_delete_through_the_api(path, model, create, update, admin_user, org):
    client = client_for(admin_user, org)

    response = send(client, "post", f"{API}/{path}/", create(org))
    assert response.status_code == 201, response.json()
    pk = response.json()["id"]
    created = only_entry(model, CREATE, object_id=pk)
    assert_made_by(created, admin_user, org)
    assert created.changes["id"] == [None, pk]

    field, value = next(iter(update.items()))
    before = response.json()[field]
    assert send(client, "patch", f"{API}/{path}/{pk}/", update).status_code == 200
    updated = only_entry(model, UPDATE, object_id=pk)
    assert_made_by(updated, admin_user, org)
    # Only what changed, before and after (prices compare as numbers).
    assert list(updated.changes) == [field]
    old, new = updated.changes[field]
    assert (normal(old), normal(new)) == (normal(before), normal(value))

    assert send(client, "delete", f"{API}/{path}/{pk}/").status_code == 204
    assert_made_by(only_entry(model, DELETE, object_id=pk), admin_user, org)


def test_client_key_revocation_is_recorded(admin_user, org):
    key = make_client_key(org)
    client = client_for(admin_user, org)
    assert send(client, "post", f"{API}/client-keys/{key.pk}/revoke/").status_code == 200
    entry = only_entry(ClientKey, UPDATE, object_id=key.pk)
    assert_made_by(entry, admin_user, org)
    assert entry.changes["revoked_at"][0] is None and entry.changes["revoked_at"][1]


def test_routing_targets_are_recorded_with_their_rule(admin_user, org):
    provider = make_provider(org, slug="mine")
    first, second = make_model(provider, "m1"), make_model(provider, "m2")
    client = client_for(admin_user, org)
    payload = {"name": "r", "match_model": "*", "targets": [{"model": first.pk}]}
    rule_id = send(client, "post", f"{API}/routing-rules/", payload).json()["id"]
    target = RoutingTarget.objects.get(rule_id=rule_id)
    added = only_entry(RoutingTarget, CREATE, object_id=target.pk)
    assert_made_by(added, admin_user, org)
    assert added.changes["model"] == [None, first.pk]

    # The same targets again change nothing; new ones replace the old.
    same = {"targets": [{"model": first.pk}]}
    assert send(client, "patch", f"{API}/routing-rules/{rule_id}/", same).status_code == 200
    assert RoutingTarget.objects.get(rule_id=rule_id).pk == target.pk
    assert AuditLogEntry.objects.get_for_model(RoutingTarget).count() == 1

    new = {"targets": [{"model": second.pk, "weight": 3}]}
    assert send(client, "patch", f"{API}/routing-rules/{rule_id}/", new).status_code == 200
    assert_made_by(only_entry(RoutingTarget, DELETE, object_id=target.pk), admin_user, org)
    replacement = RoutingTarget.objects.get(rule_id=rule_id)
    entry = only_entry(RoutingTarget, CREATE, object_id=replacement.pk)
    assert entry.changes["model"] == [None, second.pk] and entry.changes["weight"] == [None, 3]


def test_the_actor_is_the_jwt_user_not_the_session_user(admin_user, org, client):
    """The management API authenticates inside the view (DRF, JWT): after the middleware
    has run, so the actor must be read when the entry is written."""
    staff = make_user("staff", is_staff=True, is_superuser=True)
    client.force_login(staff)  # a session for someone else on the same client
    token = client_for(admin_user, org)._credentials["HTTP_AUTHORIZATION"]
    response = client.post(
        f"{API}/client-keys/",
        {"name": "app"},
        content_type="application/json",
        HTTP_AUTHORIZATION=token,
        HTTP_X_ORGANIZATION=org.slug,
    )
    assert response.status_code == 201
    entry = only_entry(ClientKey, CREATE)
    assert entry.actor_id == admin_user.pk
    assert entry.actor_email == admin_user.email


def test_a_forwarded_header_is_ignored_unless_a_proxy_is_configured(admin_user, org, settings):
    client = client_for(admin_user, org)
    headers = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.9, 10.0.0.2"}

    client.post(f"{API}/client-keys/", {"name": "a"}, format="json", **headers)
    assert only_entry(ClientKey, CREATE, object_repr__startswith="a ").remote_addr == "10.0.0.2"

    # Behind one proxy that sets X-Forwarded-For (the login throttling settings).
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    settings.AXES_IPWARE_PROXY_COUNT = 1
    client.post(f"{API}/client-keys/", {"name": "b"}, format="json", **headers)
    entry = only_entry(ClientKey, CREATE, object_repr__startswith="b ")
    assert entry.remote_addr == "198.51.100.9"
    assert entry.remote_port is None


def test_changes_to_the_global_catalog_are_for_staff_only(org, staff_admin_client, owner):
    provider = make_provider(None, slug="openai", name="OpenAI")
    url = f"{API}/providers/{provider.pk}/"
    response = staff_admin_client.patch(url, {"name": "OpenAI Inc"}, format="json")
    assert response.status_code == 200
    entry = only_entry(Provider, UPDATE, object_id=provider.pk)
    assert entry.organization_id is None and entry.actor.is_staff

    rows = client_for(owner, org).get(f"{API}/audit-log/", {"object_type": "provider"}).json()
    assert entry.pk not in [row["id"] for row in rows["results"]]


def test_denied_and_invalid_writes_record_nothing(member, admin_user, org):
    before = AuditLogEntry.objects.count()
    key = make_client_key(org)
    assert AuditLogEntry.objects.count() == before + 1
    denied = client_for(member, org).patch(f"{API}/client-keys/{key.pk}/", {"name": "x"})
    invalid = client_for(admin_user, org).patch(
        f"{API}/client-keys/{key.pk}/", {"rate_limit_rpm": -1}, format="json"
    )
    assert (denied.status_code, invalid.status_code) == (403, 400)
    assert AuditLogEntry.objects.count() == before + 1


# --- Secrets ------------------------------------------------------------------------------


def test_no_secret_ciphertext_or_key_digest_is_ever_recorded(admin_user, owner, org):
    client = client_for(admin_user, org)
    provider = make_provider(org, slug="mine")
    first, second = "sk-live-FIRSTsecret-0123456789", "sk-live-SECONDsecret-9876543210"

    response = client.post(
        f"{API}/api-keys/",
        {"provider": provider.pk, "name": "main", "secret": first},
        format="json",
    )
    pk = response.json()["id"]
    ciphertexts = [ProviderCredential.objects.get(pk=pk).encrypted_secret]
    client.patch(f"{API}/api-keys/{pk}/", {"secret": second, "name": "rotated"}, format="json")
    ciphertexts.append(ProviderCredential.objects.get(pk=pk).encrypted_secret)
    issued = client.post(f"{API}/client-keys/", {"name": "app"}, format="json").json()
    digest = ClientKey.objects.get(pk=issued["id"]).key_hash
    client.delete(f"{API}/api-keys/{pk}/")
    client.delete(f"{API}/client-keys/{issued['id']}/")

    forbidden = [first, second, *ciphertexts, issued["key"], digest]
    rotated = only_entry(ProviderCredential, UPDATE, object_id=pk)
    assert rotated.changes["name"] == ["main", "rotated"]
    assert "secret_hint" in rotated.changes  # the masked hint, as the API shows it
    listed = client_for(owner, org).get(f"{API}/audit-log/", {"page_size": 200})
    stored = json.dumps(list(AuditLogEntry.objects.values()), default=str)
    for text in (listed.content.decode(), stored):
        for secret in forbidden:
            assert secret not in text
    assert "encrypted_secret" not in stored and "key_hash" not in stored


def test_every_secret_looking_field_is_excluded():
    """A model added to the audit log with a secret must say so, not leak it."""
    from django.apps import apps

    for _, label, excluded in AUDITED_MODELS:
        for field in apps.get_model(label)._meta.concrete_fields:
            name = field.name
            looks_secret = any(word in name for word in ("secret", "hash", "password"))
            if (looks_secret or name.endswith("token")) and name != "secret_hint":
                assert name in excluded, f"{label}.{name} is recorded"


# --- The gateway and the sync write nothing ------------------------------------------------


def test_the_gateways_bookkeeping_writes_no_entry(org):
    provider = make_provider(org, slug="mine")
    model = make_model(provider, "m1")
    credential = make_credential(org, provider, name="main")
    key = make_client_key(org)
    before = AuditLogEntry.objects.count()
    now = timezone.now()

    services.metrics_bulk_create(
        [ModelMetric(organization=org, requested_model="m1", model=model, client_key=key)]
    )
    services.provider_credential_add_usage(
        credential_id=credential.pk, period="month", tokens=10, cost=Decimal("0.01"), now=now
    )
    services.provider_credential_reserve_request(
        credential_id=credential.pk, period="month", now=now
    )
    services.client_keys_mark_used(last_used={key.pk: now})
    with CaptureQueriesContext(connection) as failure:
        for _ in range(3):
            services.provider_credential_record_failure(credential=credential, error="boom")
    services.provider_credential_record_success(credential=credential)

    assert AuditLogEntry.objects.count() == before
    # No read of the old row for a diff either: lock, update and commit per failure.
    assert not any("audit_log" in q["sql"] for q in failure.captured_queries)
    credential.refresh_from_db()
    assert credential.health_status == HealthStatus.HEALTHY and credential.used_tokens == 10


# --- Through the admin (staff, session) ----------------------------------------------------


@pytest.fixture
def staff(db):
    return make_user("operator", is_staff=True, is_superuser=True, email="ops@example.com")


@pytest.fixture
def admin_site(client, staff):
    client.force_login(staff)
    return client


def post_admin(client, path, data):
    response = client.post(f"/admin/modelhub/{path}", data, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def provider_form(**fields):
    data = {
        "name": "Groq",
        "slug": "groq",
        "base_url": "https://api.groq.com/openai/v1",
        "api_format": "openai",
        "requires_api_key": "on",
        "is_active": "on",
        "may_log_prompts": "unknown",
        "may_train_on_data": "unknown",
    }
    data.update(fields)
    return data


def test_admin_provider_and_model_changes(admin_site, staff):
    post_admin(admin_site, "provider/add/", provider_form())
    provider = Provider.objects.get(slug="groq")
    assert_made_by(only_entry(Provider, CREATE, object_id=provider.pk), staff, None)

    post_admin(admin_site, f"provider/{provider.pk}/change/", provider_form(name="Groq Cloud"))
    entry = only_entry(Provider, UPDATE, object_id=provider.pk)
    assert_made_by(entry, staff, None)
    assert entry.changes == {"name": ["Groq", "Groq Cloud"]}

    model = make_model(provider, "llama")
    data = {
        "provider": provider.pk,
        "provider_model_id": "llama",
        "model_name": "Llama",
        "modality": "text->text",
        "input_modalities": '["text"]',
        "output_modalities": '["text"]',
        "supported_parameters": "[]",
        "supports_streaming": "on",
        "is_active": "on",
        "pricing_prompt": "0.000003",
        "pricing_completion": "0.000002",
        "context_length": "8192",
    }
    post_admin(admin_site, f"model/{model.pk}/change/", data)
    entry = only_entry(Model, UPDATE, object_id=model.pk)
    assert_made_by(entry, staff, None)
    assert entry.changes["model_name"] == ["llama", "Llama"]

    post_admin(admin_site, f"provider/{provider.pk}/delete/", {"post": "yes"})
    assert_made_by(only_entry(Provider, DELETE, object_id=provider.pk), staff, None)
    assert_made_by(only_entry(Model, DELETE, object_id=model.pk), staff, None)


def test_admin_credential_changes_never_record_the_secret(admin_site, staff, org):
    provider = make_provider(org, slug="mine")
    secret = "sk-admin-typed-secret-0123456789"
    data = {
        "organization": org.pk,
        "provider": provider.pk,
        "name": "main",
        "secret": secret,
        "is_active": "on",
        "priority": "0",
        "weight": "1",
        "quota_period": "month",
        "health_status": "healthy",
        "consecutive_failures": "0",
    }
    post_admin(admin_site, "providercredential/add/", data)
    credential = ProviderCredential.objects.get(name="main")
    assert_made_by(only_entry(ProviderCredential, CREATE, object_id=credential.pk), staff, org)

    data.update(secret="", health_status="unhealthy", consecutive_failures="5")
    post_admin(admin_site, f"providercredential/{credential.pk}/change/", data)
    entry = only_entry(ProviderCredential, UPDATE, object_id=credential.pk)
    assert_made_by(entry, staff, org)
    assert entry.changes == {
        "health_status": ["healthy", "unhealthy"],
        "consecutive_failures": [0, 5],
    }
    stored = json.dumps(list(AuditLogEntry.objects.values()), default=str)
    assert secret not in stored and credential.encrypted_secret not in stored


def test_admin_organization_members_keys_and_rules(admin_site, staff, org, member):
    membership = Membership.objects.get(user=member, organization=org)
    org_data = {
        "name": "Acme Corp",
        "slug": "acme",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": membership.pk,
        "memberships-0-organization": org.pk,
        "memberships-0-user": member.pk,
        "memberships-0-role": "admin",
    }
    post_admin(admin_site, f"organization/{org.pk}/change/", org_data)
    assert only_entry(Organization, UPDATE, object_id=org.pk).changes == {
        "name": ["Acme", "Acme Corp"]
    }
    entry = only_entry(Membership, UPDATE, object_id=membership.pk)
    assert_made_by(entry, staff, org)
    assert entry.changes == {"role": ["member", "admin"]}

    key = make_client_key(org, name="app")
    post_admin(
        admin_site,
        f"clientkey/{key.pk}/change/",
        {"organization": org.pk, "name": "app", "allowed_models": "[]", "budget_period": "day"},
    )
    entry = only_entry(ClientKey, UPDATE, object_id=key.pk)
    assert_made_by(entry, staff, org)
    assert entry.changes == {"budget_period": ["month", "day"]}

    model = make_model(make_provider(org, slug="mine"), "m1")
    rule = make_rule(org, [], name="r")
    rule_data = {
        "organization": org.pk,
        "name": "r",
        "match_model": "*",
        "conditions": "{}",
        "strategy": "priority",
        "fallback_enabled": "on",
        "max_attempts": "3",
        "priority": "100",
        "is_active": "on",
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "0",
        "targets-0-model": model.pk,
        "targets-0-position": "0",
        "targets-0-weight": "2",
    }
    post_admin(admin_site, f"routingrule/{rule.pk}/change/", rule_data)
    target = RoutingTarget.objects.get(rule=rule)
    assert_made_by(only_entry(RoutingTarget, CREATE, object_id=target.pk), staff, org)

    post_admin(admin_site, f"routingrule/{rule.pk}/delete/", {"post": "yes"})
    assert_made_by(only_entry(RoutingRule, DELETE, object_id=rule.pk), staff, org)
    assert_made_by(only_entry(RoutingTarget, DELETE, object_id=target.pk), staff, org)

    post_admin(admin_site, f"membership/{membership.pk}/delete/", {"post": "yes"})
    assert_made_by(only_entry(Membership, DELETE, object_id=membership.pk), staff, org)


def test_admin_adds(admin_site, staff, org, member):
    post_admin(
        admin_site,
        "organization/add/",
        {
            "name": "Initech",
            "slug": "initech",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-0-user": member.pk,
            "memberships-0-role": "owner",
        },
    )
    initech = Organization.objects.get(slug="initech")
    assert_made_by(only_entry(Organization, CREATE, object_id=initech.pk), staff, initech)
    assert_made_by(only_entry(Membership, CREATE, organization=initech), staff, initech)

    other = make_user("other")
    post_admin(
        admin_site, "membership/add/", {"user": other.pk, "organization": org.pk, "role": "member"}
    )
    added = Membership.objects.get(user=other)
    assert_made_by(only_entry(Membership, CREATE, object_id=added.pk), staff, org)

    provider = make_provider(org, slug="mine")
    model_data = {
        "provider": provider.pk,
        "provider_model_id": "m1",
        "model_name": "M1",
        "modality": "text->text",
        "input_modalities": '["text"]',
        "output_modalities": '["text"]',
        "supported_parameters": "[]",
        "is_active": "on",
    }
    post_admin(admin_site, "model/add/", model_data)
    model = Model.objects.get(provider=provider)
    assert_made_by(only_entry(Model, CREATE, object_id=model.pk), staff, org)

    rule_data = {
        "organization": org.pk,
        "name": "r",
        "match_model": "*",
        "conditions": "{}",
        "strategy": "priority",
        "max_attempts": "3",
        "priority": "100",
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "0",
        "targets-0-model": model.pk,
        "targets-0-position": "0",
        "targets-0-weight": "1",
    }
    post_admin(admin_site, "routingrule/add/", rule_data)
    rule = RoutingRule.objects.get(name="r")
    assert_made_by(only_entry(RoutingRule, CREATE, object_id=rule.pk), staff, org)
    target = RoutingTarget.objects.get(rule=rule)
    assert_made_by(only_entry(RoutingTarget, CREATE, object_id=target.pk), staff, org)


ADMIN_DELETES = [
    pytest.param(
        "organization", Organization, lambda org: Organization.objects.create(name="I", slug="i")
    ),
    pytest.param(
        "providercredential",
        ProviderCredential,
        lambda org: make_credential(org, make_provider(org, slug="mine"), name="main"),
    ),
    pytest.param("clientkey", ClientKey, lambda org: make_client_key(org)),
    pytest.param("model", Model, lambda org: make_model(make_provider(org, slug="mine"))),
]


@pytest.mark.parametrize(
    ("path", "model", "make"), ADMIN_DELETES, ids=[p.values[0] for p in ADMIN_DELETES]
)
def test_admin_deletes(path, model, make, admin_site, staff, org):
    obj = make(org)
    owner = obj if isinstance(obj, Organization) else org

    post_admin(admin_site, f"{path}/{obj.pk}/delete/", {"post": "yes"})

    assert not model.objects.filter(pk=obj.pk).exists()
    assert_made_by(only_entry(model, DELETE, object_id=obj.pk), staff, owner)


def test_the_admin_page_is_read_only(admin_site, org):
    make_client_key(org)
    entry = AuditLogEntry.objects.for_org(org).first()
    page = "/admin/modelhub/auditlogentry/"

    listed = admin_site.get(page)
    assert listed.status_code == 200
    assert entry.object_repr in listed.content.decode()
    assert admin_site.get(f"{page}?organization__id__exact={org.pk}").status_code == 200
    detail = admin_site.get(f"{page}{entry.pk}/change/")
    assert detail.status_code == 200
    assert 'type="submit"' not in detail.content.decode().split('id="content-main"')[1]

    assert admin_site.get(f"{page}add/").status_code == 403
    assert admin_site.post(f"{page}{entry.pk}/change/", {}).status_code == 403
    assert admin_site.post(f"{page}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = admin_site.post(page, {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert AuditLogEntry.objects.filter(pk=entry.pk).exists(), bulk.status_code


# --- The endpoint ----------------------------------------------------------------------------


def test_the_endpoint_shows_who_when_where_and_what(owner, admin_user, org):
    client = client_for(admin_user, org)
    admin_user.email = "admin@example.com"
    admin_user.save()
    response = send(client, "post", f"{API}/client-keys/", {"name": "app"})
    pk = response.json()["id"]
    send(client, "patch", f"{API}/client-keys/{pk}/", {"rate_limit_rpm": 60})

    body = client_for(owner, org).get(f"{API}/audit-log/", {"object_type": "client_key"}).json()
    assert body["count"] == 2
    updated, created = body["results"]  # newest first
    assert updated["action"] == "update" and created["action"] == "create"
    assert updated["object_type"] == "client_key" and updated["object_id"] == pk
    assert updated["object_repr"].startswith("app (")
    assert updated["actor"] == {
        "id": admin_user.pk,
        "username": admin_user.username,
        "email": "admin@example.com",
    }
    assert updated["remote_address"] == ADDRESS
    assert updated["changes"] == {"rate_limit_rpm": {"before": None, "after": 60}}
    assert created["changes"]["name"] == {"before": None, "after": "app"}
    assert "timestamp" in updated

    detail = client_for(owner, org).get(f"{API}/audit-log/{updated['id']}/")
    assert detail.json() == updated


def test_the_endpoint_filters(owner, admin_user, org):
    other_admin = make_user("other-admin")
    Membership.objects.create(user=other_admin, organization=org, role=Role.ADMIN)
    key = make_client_key(org)
    rule = make_rule(org, [], name="r")
    send(client_for(admin_user, org), "patch", f"{API}/client-keys/{key.pk}/", {"name": "x"})
    send(client_for(other_admin, org), "delete", f"{API}/routing-rules/{rule.pk}/")
    client = client_for(owner, org)

    def ids(**params):
        response = client.get(f"{API}/audit-log/", {**params, "page_size": 200})
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    mine = AuditLogEntry.objects.for_org(org)
    assert ids() == list(mine.order_by("-timestamp", "-id").values_list("id", flat=True))
    assert ids(object_type="routing_rule") == list(
        mine.filter(object_id=rule.pk, content_type__model="routingrule")
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert ids(object_type="client_key", object_id=key.pk) == list(
        AuditLogEntry.objects.get_for_object(key).order_by("-id").values_list("id", flat=True)
    )
    assert ids(actor=admin_user.pk) == [only_entry(ClientKey, UPDATE).pk]
    assert ids(action="delete") == [only_entry(RoutingRule, DELETE).pk]
    later = timezone.now() + timedelta(minutes=1)
    assert ids(since=later.isoformat()) == []
    assert len(ids(until=later.isoformat())) == mine.count()
    assert ids(page_size=1)[0] == ids()[0]


@pytest.mark.parametrize(
    "params",
    [
        {"object_type": "secret"},
        {"object_id": "abc"},
        {"actor": "me"},
        {"action": "access"},
        {"since": "yesterday"},
        {"until": "2025-02-30"},
        {"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
    ],
    ids=str,
)
def test_bad_filters_are_400_naming_the_parameter(params, owner, org):
    response = client_for(owner, org).get(f"{API}/audit-log/", params)
    assert response.status_code == 400
    assert set(response.json()) & set(params)
