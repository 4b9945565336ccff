"""The OpenAPI schema documents the whole site, every field, and loads nothing from elsewhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator

from gateway import urls as gateway_urls

# Routes that are not part of the API: Django admin, the docs themselves, static files,
# the HTML pages of people (dashboard, catalog browser) and the gateway's catch-all 404.
UNDOCUMENTED = {
    "schema",
    "swagger-ui",
    "redoc",
    "dashboard",
    "catalog:browse",
    "catalog:browse-model",
    "gateway:unknown",
}
UNDOCUMENTED_NAMESPACES = {"admin"}

# Properties allowed without a description: none today. Add "Component.property" with a
# comment saying why, if a third-party component ever cannot carry one.
UNDESCRIBED_ALLOWED: set[str] = set()

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _route_names(patterns, namespace=None):
    """The view name (``namespace:name``) of every route, walking includes."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace or namespace
            yield from _route_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            if namespace in UNDOCUMENTED_NAMESPACES:
                continue
            name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
            if name in UNDOCUMENTED:
                continue
            if name is None and "static" in str(entry.pattern):
                continue
            yield name or str(entry.pattern)


def _sample(path: str) -> str:
    """A concrete URL for a schema path: every ``{param}`` becomes a plausible value."""
    samples = {"id": "1", "model_id": "alpha/llama-3.1-8b", "model_name": "meta-llama/llama-3"}
    return re.sub(r"\{(\w+)\}", lambda m: samples.get(m.group(1), "acme"), path)


def _documented_routes(schema) -> set[str]:
    return {resolve(_sample(path)).view_name for path in schema["paths"]}


def test_every_route_of_the_site_is_documented(schema):
    routes = set(_route_names(get_resolver().url_patterns))
    assert "gateway:chat-completions" in routes and "sync:status" in routes
    missing = routes - _documented_routes(schema)
    assert not missing, f"routes missing from the OpenAPI schema: {sorted(missing)}"


def test_every_route_of_the_gateway_urlconf_is_documented(schema):
    """The gateway's lean ASGI path serves gateway/urls.py on its own."""
    routes = set(_route_names(gateway_urls.urlpatterns, namespace="gateway"))
    documented = set()
    for path in schema["paths"]:
        if path.startswith("/v1/") or path == "/metrics":
            documented.add("gateway:" + resolve(_sample(path), urlconf=gateway_urls).url_name)
    assert routes and routes <= documented, sorted(routes - documented)


def test_operations_name_their_security(schema):
    security = {
        (path, method): operation.get("security")
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    assert security[("/v1/chat/completions", "post")] == [
        {"clientKey": []},
        {"clientKeyHeader": []},
    ]
    assert security[("/admin/model-sync/all", "post")] == [{"adminKey": []}]
    assert security[("/api/modelhub/client-keys/", "post")] == [{"jwtAuth": []}]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["clientKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": schemes["clientKeyHeader"]["description"],
    }
    assert {"jwtAuth", "clientKey", "adminKey"} <= set(schemes)


def test_gateway_operations_document_extensions_headers_and_errors(schema):
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    body = chat["requestBody"]["content"]
    assert list(body) == ["application/json"]
    request = schema["components"]["schemas"]["CreateChatCompletionRequest"]["properties"]
    assert {"model", "models", "provider", "messages", "stream"} <= set(request)
    preferences = schema["components"]["schemas"]["ProviderPreferencesRequest"]["properties"]
    assert set(preferences) == {
        "order",
        "only",
        "ignore",
        "allow_fallbacks",
        "sort",
        "max_price",
        "data_collection",
        "require_parameters",
    }
    ok = chat["responses"]["200"]
    assert {
        "X-Request-Id",
        "X-Gateway-Provider",
        "X-Gateway-Model",
        "X-Gateway-Attempts",
        "X-Gateway-Fallbacks",
        "X-Gateway-Cost",
    } <= set(ok["headers"])
    assert set(ok["content"]) == {"application/json", "text/event-stream"}
    error = chat["responses"]["429"]["content"]["application/json"]["schema"]["$ref"]
    assert error == "#/components/schemas/GatewayError"


def _properties(name, schema, components, seen):
    if "$ref" in schema:
        return
    for prop, spec in (schema.get("properties") or {}).items():
        yield f"{name}.{prop}", spec
        yield from _properties(f"{name}.{prop}", spec, components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _properties(f"{name}[]", schema[key], components, seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key) or []:
            yield from _properties(name, sub, components, seen)


def test_every_property_has_a_description(schema):
    components = schema["components"]["schemas"]
    properties = [
        (path, spec)
        for name, component in components.items()
        for path, spec in _properties(name, component, components, set())
    ]
    assert len(properties) > 500
    undescribed = sorted(
        path
        for path, spec in properties
        if not (spec.get("description") or "").strip() and path not in UNDESCRIBED_ALLOWED
    )
    assert not undescribed, f"{len(undescribed)} properties without a description: {undescribed}"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_reference_only_this_site(client, path):
    response = client.get(path)
    assert response.status_code == 200
    # The bundles hold remote URLs of their own (ReDoc's sidebar logo): the policy keeps
    # the browser from fetching them; tests/pages/test_docs_browser.py watches it do so.
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in policy and "*" not in policy
    html = response.content.decode()
    parser = _Links()
    parser.feed(html)
    assert parser.urls, "the page should load its scripts"
    foreign = [url for url in parser.urls if urlsplit(url).netloc or url.startswith("//")]
    assert not foreign, foreign
    assert "fonts.googleapis.com" not in html and "https://" not in html


def _request_examples(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or not path.startswith("/api/modelhub/"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            for name, example in content.get("application/json", {}).get("examples", {}).items():
                yield path, method, name, example["value"]


def test_create_endpoints_and_key_actions_have_examples(schema):
    documented = {(path, method) for path, method, _, _ in _request_examples(schema)}
    assert {
        ("/api/modelhub/client-keys/", "post"),
        ("/api/modelhub/api-keys/", "post"),
        ("/api/modelhub/providers/", "post"),
        ("/api/modelhub/routing-rules/", "post"),
        ("/api/modelhub/models/", "post"),
        ("/api/modelhub/routing-rules/evaluate/", "post"),
        ("/api/modelhub/models/{id}/estimate_cost/", "post"),
    } <= documented


def test_request_examples_are_accepted_by_the_api(schema, org, admin_user, api_client):
    """Every example a person sees in the docs is a body the API takes, once the ids
    point at the caller's own objects."""
    from modelhub.models import Model, Provider
    from tests.support.api import make_user

    make_user("alice")
    provider = Provider.objects.create(
        organization=org, name="Private", slug="private", base_url="https://llm.example.com/v1"
    )
    first, second = (
        Model.objects.create(provider=provider, provider_model_id=name, model_name=name)
        for name in ("small", "large")
    )
    ids = {"provider": provider.pk, "model": first.pk}
    client = api_client(admin_user, org)
    examples = list(_request_examples(schema))
    assert len(examples) >= 10
    for path, method, name, value in examples:
        body = {
            key: ids[key] if key in ids and isinstance(item, int) else item
            for key, item in value.items()
        }
        if "targets" in body:
            body["targets"] = [{"model": first.pk}, {"model": second.pk}]
        url = path.replace("{id}", str(first.pk)).replace("{organization_slug}", org.slug)
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code in (200, 201), (path, name, response.json())
