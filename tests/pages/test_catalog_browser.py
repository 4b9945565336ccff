"""The catalog browser pages: filters, bad input, empty state, the model page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelhub.models import Model, Organization, Provider


@pytest.fixture
def catalog(db):
    groq = Provider.objects.create(name="Groq", slug="groq")
    private = Provider.objects.create(
        name="Acme vLLM",
        slug="acme-vllm",
        organization=Organization.objects.create(name="Acme", slug="acme"),
    )
    for i in range(60):
        Model.objects.create(
            provider=groq,
            provider_model_id=f"model-{i:02d}",
            model_name=f"Model {i:02d}",
            pricing_prompt=Decimal(i + 1) / Decimal(10**8),
            pricing_completion=Decimal(i + 1) / Decimal(10**7),
            context_length=1000 * (i + 1),
            supports_vision=i % 10 == 0,
        )
    Model.objects.create(
        provider=private, provider_model_id="secret-model", model_name="Secret Model"
    )
    return groq


def test_browse_lists_and_paginates(client, catalog):
    html = client.get("/catalog/browse/").content.decode()
    assert "60 models" in html
    assert "Page 1 of 2" in html
    assert html.count('<tr>\n      <td><a href="/catalog/browse/model/') == 50
    assert "Secret Model" not in html  # an organization's private rows are not public
    second = client.get("/catalog/browse/?page=2").content.decode()
    assert "Page 2 of 2" in second and "Model 59" in second


def test_browse_filters_by_price_per_million_and_capability(client, catalog):
    # Model i costs (i + 1) / 100 USD per million input tokens: at most $0.05 keeps 0..4.
    html = client.get("/catalog/browse/?max_price_per_m=0.05&sort=-price").content.decode()
    assert "5 models" in html
    assert html.index("Model 04") < html.index("Model 00")
    assert "$0.05" in html and "$0.5<" in html  # input and output per million of model 04
    vision = client.get("/catalog/browse/?capability=vision&min_context=20000").content.decode()
    assert "4 models" in vision  # models 20, 30, 40, 50


@pytest.mark.parametrize(
    "query",
    [
        "max_price_per_m=cheap",
        "min_context=-5",
        "capability=telepathy",
        "sort=random",
        "min_context=abc",
    ],
)
def test_browse_bad_filters_say_what_is_wrong(client, catalog, query):
    response = client.get(f"/catalog/browse/?{query}")
    assert response.status_code == 400
    assert 'id="filter-error"' in response.content.decode()


def test_browse_empty_catalog_says_what_to_do(client, db):
    html = client.get("/catalog/browse/").content.decode()
    assert 'id="catalog-empty"' in html and "sync_models" in html


def test_model_page_compares_prices(client, catalog):
    Model.objects.create(
        provider=Provider.objects.create(name="OpenRouter", slug="openrouter"),
        provider_model_id="groq/model-03",
        model_name="Model 03 via OpenRouter",
        pricing_prompt=Decimal("0.00000001"),
        pricing_completion=Decimal("0.00000002"),
    )
    response = client.get("/catalog/browse/model/groq/model-03")
    assert response.status_code == 200
    html = response.content.decode()
    table = html[html.index('id="price-comparison"') :]
    assert table.index("OpenRouter") < table.index("Groq")  # $0.01/1M before $0.04/1M
    assert client.get("/catalog/browse/model/groq/no-such-model").status_code == 404
    assert client.get("/catalog/browse/model/acme-vllm/secret-model").status_code == 404
