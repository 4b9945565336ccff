"""One isolation and role suite over every org-scoped endpoint of the management API.

Each endpoint is described once in ``ENDPOINTS`` (how to build one of its objects for an
organization, a valid create payload, a valid update payload); every test below iterates
that table, so a new endpoint gets the whole suite by adding one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    Membership,
    Model,
    ModelMetric,
    Provider,
    ProviderCredential,
    Role,
    RoutingRule,
    Webhook,
    WebhookDelivery,
)
from tests.support.api import API, ROLES, make_user
from tests.support.builders import (
    db_state,
    make_client_key,
    make_credential,
    make_delivery,
    make_metric,
    make_model,
    make_provider,
    make_rule,
    make_webhook,
    unique,
)


def org_provider(org) -> Provider:
    """The organization's private provider (created on first use)."""
    provider = Provider.objects.filter(organization=org, slug=f"{org.slug}-local").first()
    return provider or make_provider(org, slug=f"{org.slug}-local", requires_api_key=True)


def org_model(org) -> Model:
    provider = org_provider(org)
    return provider.models.first() or make_model(provider, f"{org.slug}-llm")


def org_credential(org) -> ProviderCredential:
    existing = ProviderCredential.objects.for_org(org).first()
    return existing or make_credential(org, org_provider(org), name="main")


def org_webhook(org) -> Webhook:
    """The organization's webhook whose deliveries are listed (created on first use)."""
    existing = Webhook.objects.for_org(org).filter(description="listed").first()
    return existing or make_webhook(org, description="listed")


def new_member(org) -> Membership:
    user = make_user(unique("person"))
    return Membership.objects.create(organization=org, user=user, role=Role.MEMBER)


def audit_entry(org) -> AuditLogEntry:
    """The entry of a change to the organization (a new client key)."""
    key = make_client_key(org)
    return AuditLogEntry.objects.get_for_object(key).for_org(org).get()


@dataclass(frozen=True)
class Endpoint:
    name: str
    model: type
    make: Callable  # (org) -> object of that org
    create: Callable | None  # (org) -> valid create payload; None: read only
    update: Callable | None  # (org, obj) -> valid PUT payload (also sent as PATCH)
    updated: Callable | None  # (obj refetched) -> True when the update payload was applied
    base: Callable = None  # (org) -> list URL; default f"{API}/{name}/"
    read_role: str = Role.MEMBER  # the least role that may list and retrieve

    def list_url(self, org) -> str:
        return self.base(org) if self.base else f"{API}/{self.name}/"

    def detail_url(self, org, pk) -> str:
        return f"{self.list_url(org)}{pk}/"

    @property
    def writable(self) -> bool:
        return self.update is not None

    def __str__(self):
        return self.name


ENDPOINTS = [
    Endpoint(
        name="providers",
        model=Provider,
        make=lambda org: org_provider(org),
        create=lambda org: {
            "name": "Local Ollama",
            "slug": unique("ollama"),
            "base_url": "http://localhost:11434",
            "api_format": "ollama",
            "requires_api_key": False,
        },
        update=lambda org, obj: {"name": "Renamed", "slug": obj.slug},
        updated=lambda obj: obj.name == "Renamed",
    ),
    Endpoint(
        name="models",
        model=Model,
        make=lambda org: org_model(org),
        create=lambda org: {
            "provider": org_provider(org).pk,
            "provider_model_id": unique("llm"),
            "model_name": "Private LLM",
            "pricing_prompt": "0.000001",
            "pricing_completion": "0.000002",
            "context_length": 4096,
        },
        update=lambda org, obj: {
            "provider": obj.provider_id,
            "provider_model_id": obj.provider_model_id,
            "model_name": "Renamed",
        },
        updated=lambda obj: obj.model_name == "Renamed",
    ),
    Endpoint(
        name="api-keys",
        model=ProviderCredential,
        make=lambda org: org_credential(org),
        create=lambda org: {
            "provider": org_provider(org).pk,
            "name": unique("key"),
            "secret": "sk-live-abcdefghijklmnop1234",
        },
        update=lambda org, obj: {"provider": obj.provider_id, "name": "renamed"},
        updated=lambda obj: obj.name == "renamed",
    ),
    Endpoint(
        name="client-keys",
        model=ClientKey,
        make=lambda org: make_client_key(org),
        create=lambda org: {"name": unique("app"), "allowed_models": ["gpt-4o"]},
        update=lambda org, obj: {"name": "renamed", "rate_limit_rpm": 60},
        updated=lambda obj: obj.name == "renamed" and obj.rate_limit_rpm == 60,
    ),
    Endpoint(
        name="routing-rules",
        model=RoutingRule,
        make=lambda org: make_rule(org, [org_model(org)]),
        create=lambda org: {
            "name": unique("rule"),
            "match_model": "gpt-*",
            "strategy": "cheapest",
            "targets": [{"model": org_model(org).pk, "credential": org_credential(org).pk}],
        },
        update=lambda org, obj: {
            "name": "renamed",
            "match_model": "claude-*",
            "targets": [{"model": org_model(org).pk}],
        },
        updated=lambda obj: obj.name == "renamed" and obj.match_model == "claude-*",
    ),
    Endpoint(
        name="metrics",
        model=ModelMetric,
        make=lambda org: make_metric(org, model=org_model(org)),
        create=lambda org: {
            "requested_model": "gpt-4o",
            "model": org_model(org).pk,
            "client_key": make_client_key(org).pk,
            "input_tokens": 10,
            "output_tokens": 5,
            "cost": "0.0001",
        },
        update=None,
        updated=None,
    ),
    Endpoint(
        name="members",
        model=Membership,
        make=new_member,
        create=lambda org: {"username": make_user(unique("newcomer")).username},
        update=lambda org, obj: {"role": "admin"},
        updated=lambda obj: obj.role == Role.ADMIN,
        base=lambda org: f"{API}/organizations/{org.slug}/members/",
    ),
    Endpoint(
        name="audit-log",
        model=AuditLogEntry,
        make=audit_entry,
        create=None,
        update=None,
        updated=None,
        read_role=Role.ADMIN,
    ),
    Endpoint(
        name="webhooks",
        model=Webhook,
        make=lambda org: make_webhook(org),
        create=lambda org: {
            "url": "https://hooks.example.com/modelhub",
            "thresholds": [80],
            "events": ["organization.budget_threshold"],
        },
        update=lambda org, obj: {"url": "https://hooks.example.com/renamed", "is_active": False},
        updated=lambda obj: obj.url.endswith("/renamed") and not obj.is_active,
    ),
    Endpoint(
        name="webhook-deliveries",
        model=WebhookDelivery,
        make=lambda org: make_delivery(org, org_webhook(org)),
        create=None,
        update=None,
        updated=None,
        base=lambda org: f"{API}/webhooks/{org_webhook(org).pk}/deliveries/",
    ),
]
WRITABLE = [e for e in ENDPOINTS if e.writable]
DETAIL_METHODS = ["get", "put", "patch", "delete"]


def call(client, method, url, payload=None):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, payload, format="json")


def detail_methods(endpoint):
    return DETAIL_METHODS if endpoint.writable else ["get"]


# --- Another organization's objects -----------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "method"),
    [(e, m) for e in ENDPOINTS for m in detail_methods(e)],
    ids=str,
)
def test_foreign_object_is_404_like_a_missing_one(endpoint, method, org, other_org, owner_client):
    foreign = endpoint.make(other_org)
    payload = endpoint.update(org, endpoint.make(org)) if method in ("put", "patch") else None
    # URLs first: a nested endpoint's URL may need a parent object of the organization.
    foreign_url, missing_url = (endpoint.detail_url(org, pk) for pk in (foreign.pk, 987654321))
    before = db_state()

    response = call(owner_client, method, foreign_url, payload)
    missing = call(owner_client, method, missing_url, payload)

    assert response.status_code == 404
    assert response.json() == missing.json()
    assert missing.status_code == 404
    assert db_state() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_lists_exclude_other_organizations(endpoint, org, other_org, owner_client):
    mine = [endpoint.make(org), endpoint.make(org) if endpoint.name != "providers" else None]
    theirs = endpoint.make(other_org)

    response = owner_client.get(endpoint.list_url(org), {"page_size": 200})

    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert {obj.pk for obj in mine if obj is not None} <= ids
    assert theirs.pk not in ids
    if endpoint.model is Membership:
        expected = set(Membership.objects.filter(organization=org).values_list("pk", flat=True))
    elif endpoint.model in (Provider, Model):
        expected = set(endpoint.model.objects.visible_to(org).values_list("pk", flat=True))
    else:
        expected = set(endpoint.model.objects.for_org(org).values_list("pk", flat=True))
    assert ids == expected


def _request_log(org, other_org):
    """Two requests of each organization, each made with its own key and credential."""
    rows = {}
    for owner in (org, other_org):
        provider = org_provider(owner)
        rows[owner.pk] = [
            make_metric(
                owner,
                provider=provider,
                model=org_model(owner),
                client_key=make_client_key(owner),
                credential=org_credential(owner),
                status_code=status,
                success=status == 200,
                error_type="" if status == 200 else "upstream_error",
                cost=cost,
            )
            for status, cost in ((200, "0.5"), (502, "0"))
        ]
    return rows


@pytest.mark.parametrize(
    "params",
    [
        {"ordering": "-cost", "page_size": 1},
        {"ordering": "latency_ms", "page_size": 1},
        {"error_source": "provider"},
        {"success": "false", "since": "2000-01-01T00:00:00Z"},
    ],
    ids=str,
)
@pytest.mark.parametrize("export", [False, True], ids=["pages", "csv"])
def test_request_log_pages_and_export_exclude_other_organizations(
    params, export, org, other_org, owner_client
):
    rows = _request_log(org, other_org)
    theirs = {row.pk for row in rows[other_org.pk]}
    url = f"{API}/metrics/"
    if export:
        response = owner_client.get(url, {**params, "format": "csv"})
        assert response.status_code == 200
        lines = b"".join(response.streaming_content).decode().splitlines()[1:]
        found = {int(line.split(",")[0]) for line in lines}
    else:
        found, response = set(), owner_client.get(url, params)
        while True:
            assert response.status_code == 200
            found |= {row["id"] for row in response.json()["results"]}
            if not response.json()["next"]:
                break
            response = owner_client.get(response.json()["next"])
    assert found and not found & theirs
    assert found <= {row.pk for row in rows[org.pk]}


@pytest.mark.parametrize("name", ["client_key", "provider", "model", "credential"])
@pytest.mark.parametrize("export", [False, True], ids=["pages", "csv"])
def test_request_log_filters_by_another_organizations_ids_find_nothing(
    name, export, org, other_org, owner_client
):
    rows = _request_log(org, other_org)
    foreign = getattr(rows[other_org.pk][0], f"{name}_id")
    response = owner_client.get(
        f"{API}/metrics/", {name: foreign, **({"format": "csv"} if export else {})}
    )
    assert response.status_code == 200
    if export:
        assert b"".join(response.streaming_content).decode().count("\n") == 1  # the header
    else:
        assert response.json()["results"] == []


# --- Foreign ids in input ---------------------------------------------------------------


def foreign_rule(org, other_org):
    return make_rule(other_org, [org_model(other_org)])


FOREIGN_INPUT = [
    # (endpoint, method, payload(org, other_org), field that must carry the error)
    (
        "models",
        "post",
        lambda org, other: {
            "provider": org_provider(other).pk,
            "provider_model_id": "stolen",
            "model_name": "Stolen",
        },
        "provider",
    ),
    (
        "api-keys",
        "post",
        lambda org, other: {
            "provider": org_provider(other).pk,
            "name": "x",
            "secret": "sk-1234567890abcdef",
        },
        "provider",
    ),
    (
        "routing-rules",
        "post",
        lambda org, other: {
            "name": "r",
            "match_model": "*",
            "targets": [{"model": org_model(other).pk}],
        },
        "targets",
    ),
    (
        "routing-rules",
        "post",
        lambda org, other: {
            "name": "r",
            "match_model": "*",
            "targets": [{"model": org_model(org).pk, "credential": org_credential(other).pk}],
        },
        "targets",
    ),
    (
        "metrics",
        "post",
        lambda org, other: {"requested_model": "x", "client_key": make_client_key(other).pk},
        "client_key",
    ),
    (
        "metrics",
        "post",
        lambda org, other: {"requested_model": "x", "credential": org_credential(other).pk},
        "credential",
    ),
    (
        "metrics",
        "post",
        lambda org, other: {"requested_model": "x", "model": org_model(other).pk},
        "model",
    ),
    (
        "metrics",
        "post",
        lambda org, other: {"requested_model": "x", "provider": org_provider(other).pk},
        "provider",
    ),
    (
        "metrics",
        "post",
        lambda org, other: {"requested_model": "x", "routing_rule": foreign_rule(org, other).pk},
        "routing_rule",
    ),
    ("models", "patch", lambda org, other: {"provider": org_provider(other).pk}, "provider"),
    ("api-keys", "patch", lambda org, other: {"provider": org_provider(other).pk}, "provider"),
    (
        "routing-rules",
        "patch",
        lambda org, other: {"targets": [{"model": org_model(other).pk}]},
        "targets",
    ),
]
BY_NAME = {e.name: e for e in ENDPOINTS}


@pytest.mark.parametrize(
    ("name", "method", "payload", "field"),
    FOREIGN_INPUT,
    ids=[f"{n}-{m}-{f}-{i}" for i, (n, m, _, f) in enumerate(FOREIGN_INPUT)],
)
def test_foreign_ids_in_input_are_rejected(
    name, method, payload, field, org, other_org, owner_client
):
    endpoint = BY_NAME[name]
    body = payload(org, other_org)
    url = endpoint.list_url(org)
    if method == "patch":
        url = endpoint.detail_url(org, endpoint.make(org).pk)
    before = db_state()

    response = call(owner_client, method, url, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert db_state() == before


def test_foreign_id_error_reads_like_a_missing_id(org, other_org, owner_client):
    foreign = owner_client.post(
        f"{API}/api-keys/",
        {"provider": org_provider(other_org).pk, "name": "x", "secret": "sk-1234567890abcdef"},
        format="json",
    )
    missing = owner_client.post(
        f"{API}/api-keys/",
        {"provider": 987654321, "name": "x", "secret": "sk-1234567890abcdef"},
        format="json",
    )
    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["provider"] == [
        m.replace("987654321", str(org_provider(other_org).pk)) for m in missing.json()["provider"]
    ]


# --- Roles -------------------------------------------------------------------------------

ACTIONS = ["list", "retrieve", "create", "update", "partial_update", "destroy"]
ALLOWED = {
    "owner": set(ACTIONS),
    "admin": set(ACTIONS),
    "member": {"list", "retrieve"},
    "non_member": set(),
    "anonymous": set(),
}
SUCCESS = {
    "list": 200,
    "retrieve": 200,
    "create": 201,
    "update": 200,
    "partial_update": 200,
    "destroy": 204,
}
DENIED = {"member": 403, "non_member": 404, "anonymous": 401}


def role_cases():
    for endpoint in ENDPOINTS:
        actions = ACTIONS if endpoint.writable else ["list", "retrieve", "create"]
        if endpoint.create is None:
            actions = ["list", "retrieve"]
        for role in ROLES:
            for action in actions:
                yield pytest.param(endpoint, role, action, id=f"{endpoint.name}-{role}-{action}")


def payload_for(endpoint, action, org, obj):
    if action == "create":
        return endpoint.create(org)
    if action in ("update", "partial_update"):
        return endpoint.update(org, obj)
    return None


def request_for(endpoint, action, client, org, obj, payload):
    method = {
        "list": "get",
        "retrieve": "get",
        "create": "post",
        "update": "put",
        "partial_update": "patch",
        "destroy": "delete",
    }[action]
    url = (
        endpoint.list_url(org) if action in ("list", "create") else endpoint.detail_url(org, obj.pk)
    )
    return call(client, method, url, payload)


@pytest.mark.parametrize(("endpoint", "role", "action"), list(role_cases()))
def test_role_allows_or_denies(endpoint, role, action, org, caller):
    client = caller(role)
    obj = endpoint.make(org)
    # Build the payload (and what it refers to) first, so only the call itself can write.
    payload = payload_for(endpoint, action, org, obj)
    count = endpoint.model.objects.count()
    before = db_state()

    response = request_for(endpoint, action, client, org, obj, payload)

    allowed = ALLOWED[role]
    if role == "member" and endpoint.read_role != Role.MEMBER:
        allowed = set()
    if action not in allowed:
        assert response.status_code == DENIED[role], response.content
        assert "detail" in response.json()
        assert db_state() == before
        return
    assert response.status_code == SUCCESS[action], response.content
    if action == "create":
        assert endpoint.model.objects.count() == count + 1
    elif action == "destroy":
        assert not endpoint.model.objects.filter(pk=obj.pk).exists()
    elif action in ("update", "partial_update"):
        assert endpoint.updated(endpoint.model.objects.get(pk=obj.pk))
    else:
        assert db_state() == before


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_metrics_are_append_only(method, org, owner_client):
    metric = make_metric(org)
    before = db_state()
    response = call(owner_client, method, f"{API}/metrics/{metric.pk}/", {"cost": "9"})
    assert response.status_code == 405
    assert db_state() == before


@pytest.mark.parametrize(
    ("endpoint", "role"),
    [
        (e, r)
        for e in ENDPOINTS
        if e.name != "members"
        for r in ("member", "admin", "owner")
        if r != "member" or e.read_role == Role.MEMBER
    ],
    ids=str,
)
def test_no_header_with_one_membership_uses_it(endpoint, role, org, member_factory, api_client):
    obj = endpoint.make(org)
    client = api_client(member_factory(org, role))  # no X-Organization header
    response = client.get(endpoint.detail_url(org, obj.pk))
    assert response.status_code == 200
    assert response.json()["id"] == obj.pk


# --- Discovery of a private provider's models (served by the sync app) -----------------


def discover_url(provider_pk) -> str:
    return f"{API}/providers/{provider_pk}/discover/"


@pytest.mark.parametrize("role", ROLES)
def test_discover_role_allows_or_denies(role, org, caller):
    # No credential: an allowed caller gets past the roles to discovery's own 400, and
    # no request leaves the platform.
    provider = make_provider(org, base_url="http://127.0.0.1:9/v1")
    client = caller(role)
    before = db_state()

    response = client.post(discover_url(provider.pk))

    expected = 400 if role in ("owner", "admin") else DENIED[role]
    assert response.status_code == expected, response.content
    assert "detail" in response.json()
    assert db_state() == before


def test_discover_foreign_provider_is_404_like_a_missing_one(org, other_org, owner_client):
    foreign = make_provider(other_org, base_url="http://127.0.0.1:9/v1")
    before = db_state()

    response = owner_client.post(discover_url(foreign.pk))
    missing = owner_client.post(discover_url(987654321))
    malformed = owner_client.post(discover_url("1.5"))

    assert response.status_code == missing.status_code == malformed.status_code == 404
    assert response.json() == missing.json()
    assert db_state() == before
