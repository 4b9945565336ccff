"""Property-based run of the whole management API from its own OpenAPI schema.

Schemathesis reads ``/api/schema/`` from the WSGI application in-process and sends each
operation generated requests (valid and invalid ones) as the owner of an organization.
Whatever it sends, the answer must not be a 5xx, and a body the schema describes must
match it. The run is bounded and derandomized, so
CI sees the same cases every time: 100 per operation (about 5,700 for the 57 operations),
one to two minutes on two cores.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from config.wsgi import application
from tests.support.builders import (
    make_client_key,
    make_credential,
    make_metric,
    make_model,
    make_provider,
    make_rule,
)

# Generated cases per operation, valid and invalid ones mixed. Schemathesis's coverage
# phase (hypothesis's explicit phase) is left out: it makes every boundary case of every
# field, up to 700 cases for one update, which would triple the run for few new finds.
MAX_EXAMPLES = 100

schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(path_regex=r"^/api/")


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Calls go straight to the WSGI handler, whose request signals would close the
    database connection that holds the test's transaction; Django's test client
    disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owned(org, owner):
    """A small organization with one of everything, so ids and slugs can resolve."""
    provider = make_provider(org, slug="mine")
    model = make_model(provider, "m1")
    credential = make_credential(org, provider, name="main")
    client_key = make_client_key(org, name="k")
    rule = make_rule(org, [model], name="r")
    metric = make_metric(org, model=model)
    return {
        "headers": {
            "Authorization": f"Bearer {RefreshToken.for_user(owner).access_token}",
            "X-Organization": org.slug,
        },
        # Collection -> the id of one of its rows, so updates get past the lookup.
        "ids": {
            "providers": provider.pk,
            "models": model.pk,
            "api-keys": credential.pk,
            "client-keys": client_key.pk,
            "routing-rules": rule.pk,
            "metrics": metric.pk,
        },
    }


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_no_generated_request_is_a_server_error(case, owned, org):
    path_parameters = case.path_parameters or {}
    if "organization_slug" in path_parameters:
        # Members of the organization the caller owns, not of a random slug only.
        path_parameters["organization_slug"] = org.slug
    collection = case.path.removeprefix("/api/modelhub/").split("/")[0]
    if "id" in path_parameters and collection in owned["ids"] and case.method != "DELETE":
        # Reads and updates of a row that exists (deletes keep their generated ids, so
        # the row stays for the next case).
        path_parameters["id"] = owned["ids"][collection]
    case.call_and_validate(
        headers=owned["headers"],
        checks=[not_a_server_error, response_schema_conformance],
    )
