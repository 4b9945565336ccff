"""Providers and models: global rows for everyone, private rows per organization, filters,
and cost estimates checked against hand-computed Decimal numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelhub.models import Model, Provider
from tests.support.api import API
from tests.support.builders import db_state, make_model, make_provider

PROVIDERS = f"{API}/providers/"
MODELS = f"{API}/models/"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


# --- Global and private rows ------------------------------------------------------------


def test_global_rows_are_listed_for_every_organization(
    global_provider, global_model, member_client, other_admin_client
):
    for client in (member_client, other_admin_client):
        assert global_provider.pk in ids(client.get(PROVIDERS))
        assert global_model.pk in ids(client.get(MODELS))


def test_private_rows_only_visible_to_their_organization(
    private_provider, private_model, member_client, other_admin_client
):
    assert private_provider.pk in ids(member_client.get(PROVIDERS))
    assert private_model.pk in ids(member_client.get(MODELS))
    assert private_provider.pk not in ids(other_admin_client.get(PROVIDERS))
    assert private_model.pk not in ids(other_admin_client.get(MODELS))
    assert other_admin_client.get(f"{MODELS}{private_model.pk}/").status_code == 404


def test_is_global_flag_in_output(global_provider, private_provider, member_client):
    rows = {r["id"]: r["is_global"] for r in member_client.get(PROVIDERS).json()["results"]}
    assert rows == {global_provider.pk: True, private_provider.pk: False}


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("kind", ["provider", "model"])
def test_global_rows_are_read_only_to_non_staff(
    kind, method, global_provider, global_model, admin_client, owner_client
):
    obj, url = (
        (global_provider, f"{PROVIDERS}{global_provider.pk}/")
        if kind == "provider"
        else (global_model, f"{MODELS}{global_model.pk}/")
    )
    payload = (
        {"name": "Hijacked", "slug": "openai"}
        if kind == "provider"
        else {"provider": global_provider.pk, "provider_model_id": "gpt-4o-mini", "model_name": "x"}
    )
    before = db_state()
    for client in (admin_client, owner_client):
        response = (
            client.delete(url)
            if method == "delete"
            else getattr(client, method)(url, payload, format="json")
        )
        assert response.status_code == 403
        assert "read-only" in response.json()["detail"]
    assert db_state() == before


def test_staff_may_edit_global_rows(global_provider, global_model, staff_admin_client):
    response = staff_admin_client.patch(
        f"{PROVIDERS}{global_provider.pk}/", {"description": "Curated"}, format="json"
    )
    assert response.status_code == 200
    response = staff_admin_client.patch(
        f"{MODELS}{global_model.pk}/", {"pricing_prompt": "0.00000015"}, format="json"
    )
    assert response.status_code == 200
    global_model.refresh_from_db()
    assert global_model.pricing_prompt == Decimal("0.00000015")
    global_provider.refresh_from_db()
    assert global_provider.description == "Curated"
    assert global_provider.organization_id is None


def test_only_staff_create_global_providers(admin_client, staff_admin_client):
    payload = {"name": "Mistral", "slug": "mistral", "is_global": True}
    response = admin_client.post(PROVIDERS, payload, format="json")
    assert response.status_code == 400
    assert "is_global" in response.json()
    response = staff_admin_client.post(PROVIDERS, payload, format="json")
    assert response.status_code == 201
    assert Provider.objects.get(slug="mistral").organization_id is None


def test_private_provider_is_owned_by_the_active_organization(org, admin_client):
    response = admin_client.post(PROVIDERS, {"name": "Mine", "slug": "mine"}, format="json")
    assert response.status_code == 201
    assert response.json()["is_global"] is False
    assert Provider.objects.get(slug="mine").organization == org


def test_a_provider_cannot_change_owner(private_provider, staff_admin_client):
    response = staff_admin_client.patch(
        f"{PROVIDERS}{private_provider.pk}/", {"is_global": True}, format="json"
    )
    assert response.status_code == 400
    private_provider.refresh_from_db()
    assert private_provider.organization_id is not None


def test_duplicate_private_provider_slug_is_400(private_provider, admin_client):
    response = admin_client.post(
        PROVIDERS, {"name": "Again", "slug": private_provider.slug}, format="json"
    )
    assert response.status_code == 400
    assert "slug" in response.json()


def test_non_staff_cannot_add_models_to_global_providers(global_provider, admin_client):
    response = admin_client.post(
        MODELS,
        {"provider": global_provider.pk, "provider_model_id": "x", "model_name": "X"},
        format="json",
    )
    assert response.status_code == 400
    assert "provider" in response.json()
    assert not Model.objects.filter(provider_model_id="x").exists()


def test_duplicate_model_id_at_a_provider_is_400(private_model, admin_client):
    response = admin_client.post(
        MODELS,
        {
            "provider": private_model.provider_id,
            "provider_model_id": private_model.provider_model_id,
            "model_name": "dup",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "provider_model_id" in response.json()


def test_negative_price_is_400(private_provider, admin_client):
    response = admin_client.post(
        MODELS,
        {
            "provider": private_provider.pk,
            "provider_model_id": "neg",
            "model_name": "Neg",
            "pricing_prompt": "-0.1",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "pricing_prompt" in response.json()


# --- Filters -----------------------------------------------------------------------------


@pytest.fixture
def catalog(org, other_org):
    openai = make_provider(None, slug="openai")
    groq = make_provider(None, slug="groq")
    rows = {
        "gpt": make_model(
            openai,
            "gpt-4o",
            model_name="GPT-4o",
            modality="text+image->text",
            supports_vision=True,
            supports_tools=True,
            pricing_prompt=Decimal("0.0000025"),
            pricing_completion=Decimal("0.00001"),
            context_length=128000,
        ),
        "mini": make_model(
            openai,
            "gpt-4o-mini",
            model_name="GPT-4o mini",
            modality="text+image->text",
            supports_vision=True,
            pricing_prompt=Decimal("0.00000015"),
            pricing_completion=Decimal("0.0000006"),
            context_length=128000,
        ),
        "llama": make_model(
            groq,
            "llama-3.1-8b-instant",
            model_name="Llama 3.1 8B",
            author="meta",
            supports_tools=True,
            pricing_prompt=Decimal("0.00000005"),
            pricing_completion=Decimal("0.00000008"),
            context_length=8192,
        ),
        "embed": make_model(
            openai,
            "text-embedding-3-small",
            model_name="Embedding small",
            modality="text->embedding",
            pricing_prompt=Decimal("0.00000002"),
            pricing_completion=None,
            context_length=8191,
            is_active=False,
        ),
    }
    make_model(make_provider(other_org, slug="theirs"), "secret-llm", model_name="GPT secret")
    return {"openai": openai, "groq": groq, **rows}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "groq"}, ["llama"]),
        ({"provider_slug": "groq"}, ["llama"]),
        ({"modality": "TEXT->EMBEDDING"}, ["embed"]),
        ({"supports_vision": "true"}, ["gpt", "mini"]),
        ({"supports_tools": "true", "supports_vision": "false"}, ["llama"]),
        ({"is_active": "false"}, ["embed"]),
        ({"min_price_prompt": "0.0000001"}, ["gpt", "mini"]),
        ({"max_price_prompt": "0.00000005"}, ["embed", "llama"]),
        ({"min_price_completion": "0.000001"}, ["gpt"]),
        ({"max_price_completion": "0.0000006"}, ["llama", "mini"]),
        ({"min_context_length": "100000"}, ["gpt", "mini"]),
        ({"max_context_length": "8191"}, ["embed"]),
        ({"min_context_length": "8000", "max_context_length": "9000"}, ["embed", "llama"]),
        ({"search": "gpt-4o"}, ["gpt", "mini"]),
        ({"search": "meta"}, ["llama"]),
        ({"search": "secret"}, []),
        ({"is_global": "true"}, ["embed", "gpt", "llama", "mini"]),
    ],
)
def test_model_filters(params, expected, catalog, member_client):
    if params.get("provider") == "groq":
        params = {"provider": catalog["groq"].pk}
    found = ids(member_client.get(MODELS, params))
    assert sorted(found) == sorted(catalog[name].pk for name in expected)


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("pricing_prompt", ["embed", "llama", "mini", "gpt"]),
        ("-pricing_prompt", ["gpt", "mini", "llama", "embed"]),
        ("context_length", ["embed", "llama", "gpt", "mini"]),
        ("model_name", ["embed", "gpt", "mini", "llama"]),
    ],
)
def test_model_ordering(ordering, expected, catalog, member_client):
    found = ids(member_client.get(MODELS, {"ordering": f"{ordering},id"}))
    assert found == [catalog[name].pk for name in expected]


def test_provider_filters(catalog, private_provider, member_client):
    assert ids(member_client.get(PROVIDERS, {"slug": "groq"})) == [catalog["groq"].pk]
    assert ids(member_client.get(PROVIDERS, {"is_global": "false"})) == [private_provider.pk]
    assert ids(member_client.get(PROVIDERS, {"search": "open"})) == [catalog["openai"].pk]


# --- estimate_cost -----------------------------------------------------------------------


@pytest.fixture
def priced(private_provider):
    return make_model(
        private_provider,
        "priced",
        pricing_prompt=Decimal("0.000000123456789012"),
        pricing_completion=Decimal("0.0000004"),
        pricing_cache_read=Decimal("0.00000003"),
        pricing_cache_write=Decimal("0.00000015"),
        pricing_image=Decimal("0.001445"),
        pricing_request=Decimal("0.0005"),
        pricing_internal_reasoning=None,
    )


def estimate(client, model, **usage):
    return client.post(f"{MODELS}{model.pk}/estimate_cost/", usage, format="json")


def test_estimate_cost_matches_hand_computed_decimal(priced, member_client):
    response = estimate(member_client, priced, input_tokens=1000, output_tokens=500)
    assert response.status_code == 200, response.json()
    body = response.json()
    prompt = Decimal("0.000000123456789012") * 1000  # 0.000123456789012
    completion = Decimal("0.0000004") * 500  # 0.0002
    assert Decimal(body["breakdown"]["input_tokens"]) == prompt
    assert Decimal(body["breakdown"]["output_tokens"]) == completion
    assert Decimal(body["estimated_cost"]) == Decimal("0.000323456789012")
    assert body["currency"] == "USD"
    assert body["missing_prices"] == []
    assert Decimal(body["unit_prices"]["input_tokens"]) == Decimal("0.000000123456789012")


def test_estimate_cost_keeps_every_decimal_of_small_prices(priced, member_client):
    body = estimate(member_client, priced, input_tokens=3).json()
    # 3 x 0.000000123456789012 = 0.000000370370367036 exactly; no rounding to 12 places.
    assert Decimal(body["estimated_cost"]) == Decimal("0.000000370370367036")


def test_estimate_cost_with_cache_images_and_requests(priced, member_client):
    body = estimate(
        member_client,
        priced,
        input_tokens=2000,
        output_tokens=100,
        cached_input_tokens=8000,
        cache_write_tokens=1000,
        images=2,
        requests=1,
    ).json()
    expected = (
        Decimal("0.000246913578024")  # 2000 x prompt
        + Decimal("0.00004")  # 100 x completion
        + Decimal("0.00024")  # 8000 x cache read 0.00000003
        + Decimal("0.00015")  # 1000 x cache write
        + Decimal("0.00289")  # 2 images x 0.001445
        + Decimal("0.0005")  # 1 request
    )
    assert Decimal(body["estimated_cost"]) == expected == Decimal("0.004066913578024")
    assert Decimal(body["breakdown"]["cached_input_tokens"]) == Decimal("0.00024")
    assert Decimal(body["breakdown"]["images"]) == Decimal("0.00289")


def test_cached_tokens_fall_back_to_the_prompt_price(private_provider, member_client):
    model = make_model(private_provider, "nocache", pricing_prompt=Decimal("0.000001"))
    body = estimate(member_client, model, cached_input_tokens=1000).json()
    assert Decimal(body["estimated_cost"]) == Decimal("0.001")
    assert Decimal(body["unit_prices"]["cached_input_tokens"]) == Decimal("0.000001")


def test_a_model_without_prices_says_so(private_provider, member_client):
    model = make_model(private_provider, "unpriced", pricing_prompt=None, pricing_completion=None)
    response = estimate(member_client, model, input_tokens=10, output_tokens=10)
    assert response.status_code == 200
    body = response.json()
    assert body["estimated_cost"] is None
    assert body["missing_prices"] == ["input_tokens", "output_tokens"]
    assert "no price" in body["detail"]


def test_a_partly_priced_model_names_the_missing_price(priced, member_client):
    body = estimate(member_client, priced, input_tokens=10, reasoning_tokens=5).json()
    assert body["estimated_cost"] is None
    assert body["missing_prices"] == ["reasoning_tokens"]


def test_estimate_with_huge_prices_and_counts_is_exact(private_provider, member_client):
    model = make_model(
        private_provider, "dear", pricing_prompt=Decimal("9999999999"), pricing_completion=None
    )
    response = estimate(member_client, model, input_tokens=10**9)
    assert response.status_code == 200
    assert Decimal(response.json()["estimated_cost"]) == Decimal("9999999999000000000")


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -1},
        {"output_tokens": 1.5},
        {"input_tokens": "1.5"},
        {"input_tokens": 10**30},
        {"input_tokens": 10**9 + 1},
        {"images": 10**7},
        {"requests": -3},
        {"input_tokens": "lots"},
        {"input_tokens": None},
        {"input_tokens": [1]},
        {"input_tokens": True},
    ],
)
def test_estimate_bad_counts_are_400(usage, priced, member_client):
    response = estimate(member_client, priced, **usage)
    assert response.status_code == 400
    assert set(usage) <= set(response.json())


def test_estimate_for_another_organizations_model_is_404(foreign_model, member_client):
    assert estimate(member_client, foreign_model, input_tokens=1).status_code == 404
