"""Hostile query parameters and paths of the public catalog: a 400 naming the parameter."""

from __future__ import annotations

import json

import pytest

from tests.support.builders import make_model, make_provider

pytestmark = pytest.mark.django_db

# Raw, percent-encoded as a client would send them: a NUL byte, the UTF-8 bytes of a lone
# surrogate (not valid UTF-8), and a byte that starts no UTF-8 character.
HOSTILE = ["%00", "a%00b", "%ED%A0%80", "x%FFy"]
TEXT_PARAMETERS = ["q", "search", "modality", "input_modality", "output_modality", "provider"]


@pytest.fixture
def catalog_rows():
    provider = make_provider(slug="openrouter")
    make_model(provider, "openai/gpt-4o", pricing_prompt="0.000001")


def _assert_400_naming(response, name: str) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    assert f"'{name}'" in json.loads(response.content)["detail"]


@pytest.mark.parametrize("name", TEXT_PARAMETERS)
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_parameters_are_a_400(client, catalog_rows, name, value):
    _assert_400_naming(client.get(f"/catalog/models?{name}={value}"), name)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_gateway_parameter_is_a_400(client, catalog_rows, value):
    _assert_400_naming(
        client.get(f"/catalog/model/openrouter/openai/gpt-4o?gateway={value}"), "gateway"
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/catalog/model/open%00router/openai/gpt-4o", "provider_name"),
        ("/catalog/model/openrouter/openai/gpt%00-4o", "model_name"),
    ],
)
def test_hostile_model_paths_are_a_400(client, catalog_rows, path, name):
    _assert_400_naming(client.get(path), name)


@pytest.mark.parametrize("model_name", ["gpt-\ud800", "gpt-\ufffd\ufffd\ufffd"])
def test_surrogates_and_undecodable_paths_are_a_400(rf, catalog_rows, model_name):
    """ASGI servers hand over the path decoded: bytes that are not UTF-8 (``%ED%A0%80``)
    as U+FFFD, and a server may pass lone surrogates through."""
    from catalog.views import model_detail

    request = rf.get("/catalog/model/openrouter/x")
    _assert_400_naming(model_detail(request, "openrouter", model_name), "model_name")


@pytest.mark.parametrize("name", ["max_price", "max_completion_price"])
@pytest.mark.parametrize("value", ["1e999999", "1e20", "-1e999999", "NaN", "Infinity"])
def test_out_of_range_prices_are_a_400(client, catalog_rows, name, value):
    _assert_400_naming(client.get(f"/catalog/models?{name}={value}"), name)


@pytest.mark.parametrize(
    ("name", "value"),
    [("min_context", "9" * 30), ("offset", "9" * 30), ("min_context", "9" * 5000)],
)
def test_out_of_range_integers_are_a_400(client, catalog_rows, name, value):
    _assert_400_naming(client.get(f"/catalog/models?{name}={value}"), name)


def test_the_largest_price_and_harmless_text_still_work(client, catalog_rows):
    response = client.get("/catalog/models?max_price=9999999999&q=gpt&modality=text")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["openai/gpt-4o"]
