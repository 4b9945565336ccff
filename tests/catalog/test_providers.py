from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.builders import make_model, make_provider

pytestmark = pytest.mark.django_db

PROVIDER_KEYS = {
    "name",
    "slug",
    "privacy_policy_url",
    "terms_of_service_url",
    "status_page_url",
    "may_log_prompts",
    "may_train_on_data",
    "moderated_by_openrouter",
    "needs_moderated",
    "logo_url",
    "site_url",
    "model_count",
    "last_synced_at",
}


@pytest.fixture
def providers(org):
    synced = datetime(2026, 8, 19, 12, 0, tzinfo=UTC)
    openai = make_provider(
        slug="openai",
        name="OpenAI",
        site_url="https://openai.com",
        privacy_policy_url="https://openai.com/privacy",
        moderated_by_openrouter=True,
        may_log_prompts=False,
        last_synced_at=synced,
    )
    make_model(openai, "gpt-4o")
    make_model(openai, "gpt-4o-mini")
    make_model(openai, "gpt-3", is_active=False)
    groq = make_provider(slug="groq", name="Groq")
    make_model(groq, "llama-3.1-8b-instant")
    make_provider(slug="anthropic", name="Anthropic", needs_moderated=True)
    make_provider(slug="retired", name="Retired", is_active=False)
    make_provider(slug="acme-private", name="Acme private", organization=org)
    return {"openai": openai, "groq": groq}


def test_envelope_and_provider_shape(client, providers):
    response = client.get("/catalog/providers")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "total", "returned", "offset", "limit", "timestamp"}
    assert body["total"] == 3
    assert body["returned"] == 3
    assert body["offset"] == 0
    assert body["limit"] is None
    assert [p["slug"] for p in body["data"]] == ["anthropic", "groq", "openai"]
    openai = body["data"][2]
    assert set(openai) == PROVIDER_KEYS
    assert openai["name"] == "OpenAI"
    assert openai["slug"] == "openai"
    assert openai["privacy_policy_url"] == "https://openai.com/privacy"
    assert openai["terms_of_service_url"] is None
    assert openai["status_page_url"] is None
    assert openai["may_log_prompts"] is False
    assert openai["may_train_on_data"] is None
    assert openai["moderated_by_openrouter"] is True
    assert openai["needs_moderated"] is False
    assert openai["logo_url"] is None
    assert openai["site_url"] == "https://openai.com"
    assert openai["model_count"] == 2
    assert openai["last_synced_at"] == "2026-08-19T12:00:00+00:00"
    assert body["data"][0]["model_count"] == 0


def test_alias_and_trailing_slash(client, providers):
    assert client.get("/catalog/provider").json()["total"] == 3
    assert client.get("/catalog/providers/").json()["total"] == 3


def test_private_and_inactive_providers_are_not_public(client, providers):
    slugs = [p["slug"] for p in client.get("/catalog/providers").json()["data"]]
    assert "acme-private" not in slugs
    assert "retired" not in slugs


def test_moderated_only(client, providers):
    body = client.get("/catalog/providers?moderated_only=true").json()
    assert [p["slug"] for p in body["data"]] == ["openai"]
    assert body["total"] == 1


@pytest.mark.parametrize(
    ("query", "slugs", "returned"),
    [
        ("limit=1", ["anthropic"], 1),
        ("limit=2&offset=1", ["groq", "openai"], 2),
        ("limit=5&offset=2", ["openai"], 1),
        ("offset=3", [], 0),
        ("offset=50", [], 0),
    ],
)
def test_pagination_edges(client, providers, query, slugs, returned):
    body = client.get(f"/catalog/providers?{query}").json()
    assert [p["slug"] for p in body["data"]] == slugs
    assert body["returned"] == returned
    assert body["total"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=abc",
        "limit=1001",
        "offset=-1",
        "offset=x",
        "moderated_only=maybe",
    ],
)
def test_bad_parameters_are_400(client, providers, query):
    response = client.get(f"/catalog/providers?{query}")
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}


def test_cached_until_the_catalog_changes(client, providers):
    from modelhub.cache import bump_catalog_version

    assert client.get("/catalog/providers").json()["total"] == 3
    make_provider(slug="mistral", name="Mistral")
    assert client.get("/catalog/providers").json()["total"] == 3  # served from the cache
    bump_catalog_version()
    assert client.get("/catalog/providers").json()["total"] == 4
