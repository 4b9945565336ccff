"""Bad input on every endpoint gives 400 or 404 with a message, never a 500."""

from __future__ import annotations

import pytest

from tests.support.api import API
from tests.support.builders import (
    db_state,
    make_client_key,
    make_credential,
    make_metric,
    make_model,
    make_provider,
    make_rule,
    make_webhook,
)


@pytest.fixture
def objects(org):
    provider = make_provider(org, slug="mine")
    model = make_model(provider, "m1")
    credential = make_credential(org, provider, name="main")
    return {
        "provider": provider,
        "model": model,
        "credential": credential,
        "client_key": make_client_key(org, name="k"),
        "rule": make_rule(org, [model], name="r"),
        "metric": make_metric(org, model=model),
        "webhook": make_webhook(org),
    }


# Writable endpoints: (list URL, detail URL of an object, a valid create payload).
WRITES = {
    "providers": (
        "providers",
        "provider",
        lambda o: {
            "name": "New",
            "slug": "new",
            "base_url": "http://localhost:1",
            "is_active": True,
        },
    ),
    "models": (
        "models",
        "model",
        lambda o: {
            "provider": o["provider"].pk,
            "provider_model_id": "m2",
            "model_name": "M2",
            "context_length": 1000,
            "pricing_prompt": "0.000001",
            "input_modalities": ["text"],
            "supports_tools": True,
        },
    ),
    "api-keys": (
        "api-keys",
        "credential",
        lambda o: {
            "provider": o["provider"].pk,
            "name": "second",
            "secret": "sk-abcdefghijklmnop",
            "priority": 1,
            "weight": 2,
            "quota_period": "day",
            "quota_requests": 100,
            "quota_cost": "5.5",
        },
    ),
    "client-keys": (
        "client-keys",
        "client_key",
        lambda o: {
            "name": "k2",
            "allowed_models": ["a"],
            "rate_limit_rpm": 10,
            "budget_amount": "1.5",
            "budget_period": "day",
        },
    ),
    "routing-rules": (
        "routing-rules",
        "rule",
        lambda o: {
            "name": "r2",
            "match_model": "gpt-*",
            "model_type": "chat",
            "strategy": "weighted",
            "conditions": {"min_input_tokens": 1, "tags": ["a"]},
            "max_attempts": 2,
            "priority": 5,
            "targets": [{"model": o["model"].pk, "credential": o["credential"].pk, "weight": 2}],
        },
    ),
    "metrics": (
        "metrics",
        "metric",
        lambda o: {
            "requested_model": "gpt",
            "model": o["model"].pk,
            "client_key": o["client_key"].pk,
            "input_tokens": 1,
            "output_tokens": 2,
            "cost": "0.1",
            "latency_ms": 5,
            "status_code": 200,
            "success": True,
            "created_at": "2025-05-01T10:00:00Z",
        },
    ),
    "webhooks": (
        "webhooks",
        "webhook",
        lambda o: {
            "url": "https://hooks.example.com/modelhub",
            "description": "alerts",
            "events": ["organization.budget_threshold", "credential.unhealthy"],
            "thresholds": [50, 100],
            "is_active": True,
        },
    ),
}
ACTIONS = {
    "estimate_cost": lambda o: (f"models/{o['model'].pk}/estimate_cost/", {"input_tokens": 1}),
    "evaluate": lambda o: ("routing-rules/evaluate/", {"model": "gpt", "tags": ["a"]}),
    "members": lambda o: ("organizations/acme/members/", {"username": "someone"}),
    "organizations": lambda o: ("organizations/", {"name": "New org"}),
}
JUNK = ["abc", 10**30, -1, 1.5, None, {}, "x" * 10000, "\u0000", [None]]


def all_post_targets():
    targets = [pytest.param(f"{name}/", None, id=name) for name in WRITES]
    targets += [pytest.param(None, name, id=name) for name in ACTIONS]
    return targets


def post_url_and_payload(objects, name, action):
    if action is not None:
        url, payload = ACTIONS[action](objects)
        return f"{API}/{url}", payload
    key = name.rstrip("/")
    return f"{API}/{key}/", WRITES[key][2](objects)


def assert_clean_error(response, statuses=(400,)):
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body, dict) and body
    return body


@pytest.mark.parametrize(("name", "action"), all_post_targets())
def test_valid_payloads_work(name, action, objects, owner_client):
    """The baseline the junk below is built from is valid."""
    from tests.support.api import make_user

    make_user("someone")
    url, payload = post_url_and_payload(objects, name, action)
    response = owner_client.post(url, payload, format="json")
    assert response.status_code in (200, 201), response.json()


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'"text"', b"null", b"42", b"[{}]", b"\xff\xfe", b'{"a":'],
    ids=["malformed", "array", "string", "null", "number", "array-of-object", "binary", "cut"],
)
@pytest.mark.parametrize(("name", "action"), all_post_targets())
def test_malformed_and_non_object_bodies(name, action, body, objects, owner_client):
    url, _ = post_url_and_payload(objects, name, action)
    before = db_state()
    response = owner_client.generic("POST", url, body, content_type="application/json")
    assert_clean_error(response)
    assert db_state() == before


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b"null", b'"text"'], ids=["malformed", "array", "null", "string"]
)
@pytest.mark.parametrize("name", [n for n in WRITES if n != "metrics"])
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_malformed_update_bodies(method, name, body, objects, owner_client):
    _, key, _ = WRITES[name]
    before = db_state()
    response = owner_client.generic(
        method, f"{API}/{name}/{objects[key].pk}/", body, content_type="application/json"
    )
    assert_clean_error(response)
    assert db_state() == before


@pytest.mark.parametrize("name", [n for n in WRITES if n not in ("client-keys",)])
def test_missing_fields_on_create(name, objects, owner_client):
    before = db_state()
    response = owner_client.post(f"{API}/{name}/", {}, format="json")
    assert_clean_error(response)
    assert db_state() == before


def field_cases():
    for name, (_, _, payload) in WRITES.items():
        fields = payload(
            {
                k: type("Stub", (), {"pk": 1})()
                for k in ("provider", "model", "credential", "client_key")
            }
        )
        for field in fields:
            yield pytest.param(name, field, id=f"{name}-{field}")


@pytest.mark.parametrize(("name", "field"), list(field_cases()))
def test_junk_in_every_field_never_breaks_the_server(name, field, objects, owner_client):
    for value in JUNK:
        payload = WRITES[name][2](objects)
        payload[field] = value
        response = owner_client.post(f"{API}/{name}/", payload, format="json")
        assert response.status_code in (201, 400), (field, repr(value)[:40], response.content[:300])
        if response.status_code == 400:
            assert isinstance(response.json(), dict)


@pytest.mark.parametrize(("name", "field"), list(field_cases()))
def test_junk_in_every_field_of_an_update(name, field, objects, owner_client):
    if name == "metrics":
        return
    _, key, _ = WRITES[name]
    url = f"{API}/{name}/{objects[key].pk}/"
    for value in JUNK:
        response = owner_client.patch(url, {field: value}, format="json")
        assert response.status_code in (200, 400), (field, repr(value)[:40], response.content[:300])


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("models", "context_length", 10**30),
        ("models", "context_length", "long"),
        ("models", "pricing_prompt", "1e40"),
        ("models", "pricing_prompt", "NaN"),
        ("models", "pricing_prompt", "Infinity"),
        ("models", "pricing_completion", "-0.000001"),
        ("models", "provider", 987654321),
        ("models", "provider", "abc"),
        ("models", "input_modalities", "text"),
        ("api-keys", "provider", 987654321),
        ("api-keys", "quota_requests", 10**30),
        ("api-keys", "quota_cost", "1e30"),
        ("api-keys", "quota_cost", "-1"),
        ("api-keys", "quota_period", "fortnight"),
        ("api-keys", "weight", -1),
        ("client-keys", "rate_limit_tpm", 10**30),
        ("client-keys", "budget_amount", "-0.01"),
        ("client-keys", "allowed_models", ["gpt\u0000"]),
        ("models", "supported_parameters", ["tools\u0000"]),
        ("routing-rules", "conditions", {"tags": ["a\u0000"]}),
        ("routing-rules", "match_model", "gpt\u0000"),
        ("providers", "name", "x\u0000"),
        ("routing-rules", "targets", []),
        ("routing-rules", "targets", [{"model": 987654321}]),
        ("routing-rules", "targets", [{"weight": 2}]),
        ("routing-rules", "targets", [{"model": "abc"}]),
        ("routing-rules", "targets", "gpt"),
        ("routing-rules", "targets", [[1]]),
        ("routing-rules", "conditions", {"min_input_tokens": 10, "max_input_tokens": 1}),
        ("routing-rules", "conditions", {"min_input_tokens": "many"}),
        ("routing-rules", "conditions", {"tags": "prod"}),
        ("routing-rules", "conditions", []),
        ("routing-rules", "strategy", "random"),
        ("routing-rules", "max_attempts", 0),
        ("metrics", "model", 987654321),
        ("metrics", "client_key", 987654321),
        ("metrics", "input_tokens", 10**30),
        ("metrics", "cost", "1e30"),
        ("metrics", "cost", "-1"),
        ("metrics", "status_code", 700),
        ("metrics", "created_at", "notadate"),
        ("metrics", "created_at", "0001-01-01T00:00:00+05:00"),
        ("metrics", "model_type", "image"),
        ("webhooks", "url", "http://169.254.169.254/latest"),
        ("webhooks", "url", "gopher://hooks.example.com/"),
        ("webhooks", "url", "https://hooks.example.com/\u0000"),
        ("webhooks", "thresholds", [0]),
        ("webhooks", "thresholds", [50, 10**30]),
        ("webhooks", "thresholds", "50"),
        ("webhooks", "events", ["everything"]),
        ("webhooks", "events", "credential.unhealthy"),
    ],
)
def test_specific_bad_values_are_400_naming_the_field(name, field, value, objects, owner_client):
    payload = WRITES[name][2](objects)
    payload[field] = value
    before = db_state()
    response = owner_client.post(f"{API}/{name}/", payload, format="json")
    body = assert_clean_error(response)
    assert field in body, body
    assert db_state() == before


@pytest.mark.parametrize(
    "payload",
    [
        {"targets": [{"weight": 2}]},
        {"targets": [{"credential": None}]},
        {"targets": [{}]},
    ],
)
def test_partial_update_of_targets_needs_a_model(payload, objects, owner_client):
    before = db_state()
    response = owner_client.patch(
        f"{API}/routing-rules/{objects['rule'].pk}/", payload, format="json"
    )
    body = assert_clean_error(response)
    assert "targets" in body
    assert db_state() == before


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"model": ""},
        {"model": None},
        {"model": 5, "model_type": "image"},
        {"model": "x", "estimated_input_tokens": -1},
        {"model": "x", "estimated_input_tokens": 10**30},
        {"model": "x", "estimated_input_tokens": "many"},
        {"model": "x", "required_capabilities": ["telepathy"]},
        {"model": "x", "required_capabilities": "vision"},
        {"model": "x", "fallback_models": "y"},
        {"model": "x", "fallback_models": [None]},
        {"model": "x", "fallback_models": ["m"] * 11},
        {"model": "x", "tags": [{"a": 1}]},
        {"model": "x" * 301},
    ],
)
def test_evaluate_bad_input(payload, owner_client):
    response = owner_client.post(f"{API}/routing-rules/evaluate/", payload, format="json")
    assert_clean_error(response)


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("organizations/acme/members/", {"username": ["a"]}),
        ("organizations/acme/members/", {"email": "not-an-email"}),
        ("organizations/acme/members/", {"username": "x" * 1000}),
        ("organizations/", {"name": ""}),
        ("organizations/", {"name": "ok", "slug": "not a slug!"}),
        ("organizations/", {"name": "x" * 201}),
        ("organizations/", {"name": None}),
    ],
)
def test_organization_and_member_bad_input(path, payload, objects, owner_client):
    before = db_state()
    response = owner_client.post(f"{API}/{path}", payload, format="json")
    assert_clean_error(response)
    assert db_state() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("budget_amount", "-0.01"),
        ("budget_amount", "1e30"),
        ("budget_amount", "NaN"),
        ("budget_amount", "lots"),
        ("budget_period", "week"),
        ("budget_period", "fortnight"),
        ("budget_period", ["day"]),
        ("rate_limit_rpm", -1),
        ("rate_limit_rpm", 10**30),
        ("rate_limit_rpm", "many"),
        ("rate_limit_tpm", -5),
        ("rate_limit_tpm", 1.5),
        ("budget_spent", "0"),
    ],
)
@pytest.mark.parametrize("method", ["patch", "post"])
def test_organization_limits_bad_input(method, field, value, objects, owner_client):
    before = db_state()
    if method == "patch":
        response = owner_client.patch(f"{API}/organizations/acme/", {field: value}, format="json")
    else:
        payload = {"name": "Limited", "slug": "limited", field: value}
        response = owner_client.post(f"{API}/organizations/", payload, format="json")
    if field == "budget_spent":
        # Read only: ignored, never written.
        assert response.status_code in (200, 201)
        assert response.json()["budget_spent"] is None
        return
    body = assert_clean_error(response)
    assert field in body, body
    assert db_state() == before


@pytest.mark.parametrize(
    "payload", [{"role": "god"}, {"role": None}, {}, {"role": ["owner"]}], ids=str
)
def test_member_role_change_bad_input(payload, org, owner, member, owner_client):
    from modelhub.models import Membership

    target = Membership.objects.get(user=member)
    before = db_state()
    response = owner_client.patch(
        f"{API}/organizations/acme/members/{target.pk}/", payload, format="json"
    )
    assert_clean_error(response)
    assert db_state() == before


# --- Unknown ids and bad ids in URLs --------------------------------------------------------

DETAIL_PATHS = [
    "providers/{}/",
    "models/{}/",
    "models/{}/estimate_cost/",
    "api-keys/{}/",
    "api-keys/{}/quota_status/",
    "client-keys/{}/",
    "client-keys/{}/revoke/",
    "routing-rules/{}/",
    "metrics/{}/",
    "audit-log/{}/",
    "organizations/acme/members/{}/",
    "organizations/{}/",
    "webhooks/{}/",
    "webhooks/{}/deliveries/",
]


@pytest.mark.parametrize("path", DETAIL_PATHS)
@pytest.mark.parametrize("pk", ["987654321", "abc", str(10**30), "-1", "0", "1.5", "%00"])
def test_unknown_or_malformed_ids_are_404(path, pk, objects, owner_client):
    url = f"{API}/{path.format(pk)}"
    is_action = path.endswith(("estimate_cost/", "revoke/"))
    response = owner_client.post(url, {}, format="json") if is_action else owner_client.get(url)
    assert_clean_error(response, statuses=(404,))


# --- Query parameters -----------------------------------------------------------------------

LIST_PATHS = [
    "organizations/",
    "organizations/acme/members/",
    "providers/",
    "models/",
    "api-keys/",
    "client-keys/",
    "routing-rules/",
    "metrics/",
    "audit-log/",
    "webhooks/",
]


# The request log pages by cursor (test_bad_cursors_are_400), every other list by number.
NUMBERED_LIST_PATHS = [path for path in LIST_PATHS if path != "metrics/"]


@pytest.mark.parametrize("path", NUMBERED_LIST_PATHS)
@pytest.mark.parametrize(
    "params",
    [{"page": "abc"}, {"page": "0"}, {"page": "-1"}, {"page": str(10**30)}, {"page": "99"}],
    ids=str,
)
def test_bad_pages_are_404_with_a_message(path, params, objects, owner_client):
    response = owner_client.get(f"{API}/{path}", params)
    body = assert_clean_error(response, statuses=(404,))
    assert "page" in body["detail"].lower()


# base64 of: nothing useful, a position without an id, an id that is not a number, a
# time without a zone, a cost that is no number, an offset beyond DRF's cutoff.
BAD_CURSORS = ["abc", "%00", "☃", "x" * 5000, "cD0x", "cD14fHk=", "cD0yMDI2LTAxLTAxVDAwOjAwOjAwfDE=",
               "bz05OTk5OTk=", "cD0tMXwx"]  # fmt: skip


@pytest.mark.parametrize("ordering", ["-created_at", "cost", "-latency_ms"])
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_bad_cursors_are_400(cursor, ordering, objects, owner_client):
    response = owner_client.get(f"{API}/metrics/?ordering={ordering}&cursor={cursor}")
    harmless = cursor in ("%00", "bz05OTk5OTk=") or (
        cursor == "cD0tMXwx" and ordering != "-created_at"
    )
    if harmless:
        # base64 skips a NUL (an empty cursor: the first page); a huge offset is ignored
        # (pages are keyed, not offset); a cost or latency of -1 is a valid position.
        assert response.status_code == 200
        return
    body = assert_clean_error(response)
    assert "cursor" in body


@pytest.mark.parametrize("path", LIST_PATHS)
def test_page_size_is_capped_at_200(path, org, owner_client):
    response = owner_client.get(f"{API}/{path}", {"page_size": "100000"})
    assert response.status_code == 200
    assert owner_client.get(f"{API}/{path}", {"page_size": "abc"}).status_code == 200


def test_page_size_cap_returns_200_rows(org, owner_client):
    provider = make_provider(org, slug="big")
    for i in range(205):
        make_model(provider, f"m{i}")
    body = owner_client.get(f"{API}/models/", {"page_size": "100000"}).json()
    assert len(body["results"]) == 200
    assert body["count"] == 205 and body["next"]


FILTERS = {
    "providers/": ["slug", "api_format", "is_active", "requires_api_key", "is_global"],
    "models/": [
        "provider",
        "provider_slug",
        "modality",
        "min_price_prompt",
        "max_price_prompt",
        "min_price_completion",
        "max_price_completion",
        "min_context_length",
        "max_context_length",
        "is_active",
        "supports_vision",
        "hugging_face_id",
        "is_global",
    ],
    "api-keys/": ["provider", "health_status", "is_active"],
    "client-keys/": ["revoked", "name"],
    "routing-rules/": ["model_type", "strategy", "is_active", "match_model"],
    "metrics/": [
        "since",
        "until",
        "streamed",
        "error_type",
        "error_source",
        "start",
        "end",
        "model_type",
        "model",
        "provider",
        "client_key",
        "credential",
        "routing_rule",
        "success",
        "status_code",
        "requested_model",
    ],
    "organizations/acme/members/": ["role"],
    "audit-log/": ["object_type", "object_id", "actor", "action", "since", "until"],
    "webhooks/": ["is_active"],
}
GARBAGE = ["abc", str(10**30), "1e400", "NaN", "1.5", "a\u0000b", "☃" * 300]


@pytest.mark.parametrize(
    ("path", "name"), [(p, n) for p, names in FILTERS.items() for n in names], ids=str
)
def test_garbage_filters_are_400_or_ignored(path, name, objects, owner_client):
    for value in GARBAGE:
        response = owner_client.get(f"{API}/{path}", {name: value})
        assert response.status_code in (200, 400), (name, value[:20], response.content[:300])
        if response.status_code == 400:
            assert name in response.json()


@pytest.mark.parametrize("path", LIST_PATHS)
@pytest.mark.parametrize(
    "params",
    [
        {"ordering": "nonsense"},
        {"ordering": "-"},
        {"ordering": "encrypted_secret"},
        {"search": "a\u0000b"},
        {"search": "%_\\"},
    ],
    ids=str,
)
def test_bad_ordering_and_search_are_harmless(path, params, objects, owner_client):
    response = owner_client.get(f"{API}/{path}", params)
    if path == "metrics/" and "ordering" in params:
        # The request log pages by the ordering's index: any other ordering is refused.
        body = assert_clean_error(response)
        assert "created_at" in str(body["ordering"])
    elif "\u0000" in params.get("search", ""):
        # A NUL cannot be stored or compared in PostgreSQL text: refused, not searched.
        body = assert_clean_error(response)
        assert "search" in str(body).lower() or "null" in str(body).lower()
    else:
        assert response.status_code == 200


@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize(
    "path",
    [
        "metrics/",
        "metrics/cost_summary/",
        "metrics/optimization_stats/",
        "metrics/dashboard_summary/",
    ],
)
def test_bad_dates_are_400(path, name, objects, owner_client):
    for value in ["notadate", "2025-02-30", "99999-01-01", "0001-01-01T00:00:00+05:00"]:
        response = owner_client.get(f"{API}/{path}", {name: value})
        body = assert_clean_error(response)
        assert name in body


@pytest.mark.parametrize("name", ["since", "until"])
def test_bad_audit_log_dates_are_400(name, objects, owner_client):
    for value in ["notadate", "2025-02-30", "99999-01-01", "0001-01-01T00:00:00+05:00"]:
        response = owner_client.get(f"{API}/audit-log/", {name: value})
        body = assert_clean_error(response)
        assert name in body


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("export", [{}, {"format": "csv"}], ids=["page", "csv"])
def test_bad_request_log_times_are_400(name, export, objects, owner_client):
    for value in ["notadate", "2025-02-30", "99999-01-01", "0001-01-01T00:00:00+05:00", "a\u0000"]:
        response = owner_client.get(f"{API}/metrics/", {name: value, **export})
        body = assert_clean_error(response)
        assert name in body


@pytest.mark.parametrize("name", FILTERS["metrics/"])
def test_garbage_filters_of_the_csv_export_are_400_in_json_or_ignored(name, objects, owner_client):
    for value in GARBAGE:
        response = owner_client.get(f"{API}/metrics/", {name: value, "format": "csv"})
        assert response.status_code in (200, 400), (name, value[:20], response.content[:300])
        if response.status_code == 400:
            assert name in response.json()
        else:
            assert response["Content-Type"].startswith("text/csv")
            b"".join(response.streaming_content)


@pytest.mark.parametrize("value", ["xml", "CSV", "", "csv\u0000"])
def test_other_formats_of_the_request_log_are_refused_or_json(value, objects, owner_client):
    response = owner_client.get(f"{API}/metrics/", {"format": value})
    assert response.status_code in (200, 404), response.content[:300]
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("header", ["x" * 5000, "a\u0000b", "acme;drop", "☃"])
def test_bad_organization_headers_are_404(header, org, owner, api_client):
    client = api_client(owner)
    client.defaults["HTTP_X_ORGANIZATION"] = header
    response = client.get(f"{API}/providers/")
    assert_clean_error(response, statuses=(404,))


# --- Hostile bodies and parameters --------------------------------------------------------

DEEP_JSON = "[" * 5000


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/token/refresh/"])
def test_deeply_nested_json_to_the_token_views_is_a_400(path, client):
    response = client.post(path, DEEP_JSON, content_type="application/json")
    body = assert_clean_error(response)
    assert "nested too deeply" in body["detail"]


@pytest.mark.parametrize(("name", "action"), all_post_targets())
def test_deeply_nested_json_is_a_400(name, action, objects, owner_client):
    url, _ = post_url_and_payload(objects, name, action)
    response = owner_client.post(url, DEEP_JSON, content_type="application/json")
    body = assert_clean_error(response)
    assert "nested too deeply" in body["detail"]


def test_deeply_nested_json_in_an_update_is_a_400(objects, owner_client):
    url = f"{API}/providers/{objects['provider'].pk}/"
    response = owner_client.patch(url, '{"a":' * 5000, content_type="application/json")
    assert_clean_error(response)


# Raw, percent-encoded as a client sends them: a NUL byte, the UTF-8 bytes of a lone
# surrogate (not valid UTF-8, decoded by Django as U+FFFD) and a stray byte.
HOSTILE_TEXT = ["%00", "a%00b", "%ED%A0%80", "x%FFy"]
TEXT_FILTERS = {
    "providers/": ["slug", "search"],
    "models/": ["provider_slug", "modality", "hugging_face_id", "search"],
    "api-keys/": ["search"],
    "client-keys/": ["name", "search"],
    "routing-rules/": ["match_model", "search"],
    "metrics/": ["requested_model", "served_model", "error_type", "search"],
    "organizations/": ["slug", "search"],
    "organizations/acme/members/": ["search"],
}


@pytest.mark.parametrize(
    ("path", "name"), [(p, n) for p, names in TEXT_FILTERS.items() for n in names], ids=str
)
@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_hostile_text_filters_are_a_400_naming_the_parameter(
    path, name, value, objects, owner_client
):
    response = owner_client.get(f"{API}/{path}?{name}={value}")
    body = assert_clean_error(response)
    assert name in body, body


@pytest.mark.parametrize(
    "path", ["metrics/cost_summary/", "metrics/dashboard_summary/", "metrics/optimization_stats/"]
)
@pytest.mark.parametrize(
    "end", ["0001-01-01T00:01:01Z", "0001-01-30T23:59:59Z", "0001-01-01T00:00:00"]
)
def test_a_report_ending_too_early_for_its_default_start_is_a_400(path, end, objects, owner_client):
    response = owner_client.get(f"{API}/{path}", {"end": end})
    body = assert_clean_error(response)
    assert "end" in body


@pytest.mark.parametrize(
    "path", ["metrics/cost_summary/", "metrics/dashboard_summary/", "metrics/optimization_stats/"]
)
def test_reports_at_the_edges_of_the_calendar_still_work(path, objects, owner_client):
    early = owner_client.get(f"{API}/{path}", {"end": "0001-02-01T00:00:00Z"})
    assert early.status_code == 200, early.content[:300]
    whole = owner_client.get(
        f"{API}/{path}", {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"}
    )
    assert whole.status_code == 200, whole.content[:300]


@pytest.mark.parametrize("pk", ["987654321", "abc", str(10**30), "-1", "0", "1.5", "%00"])
def test_unknown_or_malformed_delivery_ids_are_404(pk, objects, owner_client):
    url = f"{API}/webhooks/{objects['webhook'].pk}/deliveries/{pk}/"
    assert_clean_error(owner_client.get(url), statuses=(404,))


@pytest.mark.parametrize(
    "params",
    [{"page": "abc"}, {"page": "0"}, {"page": str(10**30)}, {"status": "a\u0000b"}, {"event": "x"}],
    ids=str,
)
def test_bad_delivery_list_parameters_are_4xx(params, objects, owner_client):
    url = f"{API}/webhooks/{objects['webhook'].pk}/deliveries/"
    response = owner_client.get(url, params)
    assert_clean_error(response, statuses=(400, 404))
