"""``/v1/models`` lists exactly what the router would route, for every kind of provider.

Both ask ``modelhub.selectors`` which providers an organization can call; this test
keeps them from drifting apart again (keyless global providers, environment keys).
"""

from decimal import Decimal

import openai
import pytest

from modelhub.models import Model, Provider
from modelhub.routing import AUTO_MODEL, RouteRequest, evaluate
from modelhub.services import provider_credential_create, provider_credential_update

PRICES = {"pricing_prompt": Decimal("0.000001"), "pricing_completion": Decimal("0.000002")}
ENV_VAR = "CALLABLE_TEST_ENV_KEY"


def add_model(provider: Provider, name: str, **fields) -> Model:
    return Model.objects.create(
        provider=provider, provider_model_id=name, model_name=name, **PRICES, **fields
    )


@pytest.fixture
def mixed_catalog(org, other_org, upstream, monkeypatch):
    url = f"{upstream.url}/openai/v1"
    monkeypatch.setenv(ENV_VAR, "sk-from-the-environment-0001")
    credentialed = Provider.objects.create(name="Own", slug="own", base_url=url)
    provider_credential_create(
        organization=org, provider=credentialed, secret="sk-own-secret-0001", name="own"
    )
    add_model(credentialed, "own-model")
    add_model(credentialed, "own-retired", is_active=False)
    keyless = Provider.objects.create(
        name="Open", slug="open", base_url=url, requires_api_key=False
    )
    add_model(keyless, "open-model")
    environment = Provider.objects.create(
        name="Env", slug="env", base_url=url, api_key_env_var=ENV_VAR
    )
    add_model(environment, "env-model")
    disabled = Provider.objects.create(name="Off", slug="off", base_url=url)
    credential = provider_credential_create(
        organization=org, provider=disabled, secret="sk-off-secret-0001", name="off"
    )
    provider_credential_update(credential=credential, is_active=False)
    add_model(disabled, "off-model")
    # Keyless, but the organization switched its only credential for it off.
    switched_off = Provider.objects.create(
        name="Open off", slug="open-off", base_url=url, requires_api_key=False
    )
    credential = provider_credential_create(
        organization=org, provider=switched_off, secret="sk-open-off-0001", name="open-off"
    )
    provider_credential_update(credential=credential, is_active=False)
    add_model(switched_off, "open-off-model")
    theirs = Provider.objects.create(
        name="Theirs",
        slug="theirs",
        base_url=url,
        organization=other_org,
        requires_api_key=False,
    )
    add_model(theirs, "their-model")


def routed(org) -> set[str]:
    """Every catalog model that a request naming it would be routed to."""
    names = set()
    for model in Model.objects.select_related("provider"):
        plan = evaluate(organization=org, request=RouteRequest(model.catalog_id))
        names |= {c.model.catalog_id for c in plan.candidates if c.model.pk == model.pk}
    return names


def routed_by_auto(org) -> set[str]:
    plan = evaluate(organization=org, request=RouteRequest(AUTO_MODEL))
    return {c.model.catalog_id for c in plan.candidates}


@pytest.mark.parametrize(
    ("allow_environment", "expected"),
    [
        (False, {"own/own-model", "open/open-model"}),
        (True, {"own/own-model", "open/open-model", "env/env-model"}),
    ],
)
def test_models_list_is_what_the_router_routes(
    gateway, client_key, org, mixed_catalog, settings, allow_environment, expected
):
    settings.GATEWAY_ALLOW_ENV_CREDENTIALS = allow_environment
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=client_key.raw_key, max_retries=0)

    listed = {model.id for model in client.models.list()}

    assert listed == expected
    assert routed(org) == expected
    assert routed_by_auto(org) == expected
