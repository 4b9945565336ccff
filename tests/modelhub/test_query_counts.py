"""Query counts of every list, pinned: the same with 3 rows as with 30, so N+1s fail."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelhub.models import Membership, Organization, Role
from tests.support.api import API, make_user
from tests.support.builders import (
    make_client_key,
    make_credential,
    make_metric,
    make_model,
    make_provider,
    make_rule,
    unique,
)


def add_providers(org, n):
    for _ in range(n):
        make_provider(org)
        make_provider(None)


def add_models(org, n):
    provider = make_provider(org)
    for _ in range(n):
        make_model(provider)


def add_credentials(org, n):
    for _ in range(n):
        make_credential(org, make_provider(None))


def add_client_keys(org, n):
    for _ in range(n):
        make_client_key(org)


def add_rules(org, n):
    provider = make_provider(None)
    credential = make_credential(org, provider)
    for _ in range(n):
        make_rule(org, [(make_model(provider), credential, 1), make_model(provider)])


def add_metrics(org, n):
    provider = make_provider(None)
    model = make_model(provider)
    key = make_client_key(org)
    for _ in range(n):
        make_metric(
            org,
            model=model,
            provider=provider,
            client_key=key,
            cost=Decimal("0.01"),
            requested_model=model.catalog_id,
            served_model=unique("served"),
        )


def add_members(org, n):
    for _ in range(n):
        Membership.objects.create(organization=org, user=make_user(unique("u")), role=Role.MEMBER)


def add_organizations(org, n):
    user = Membership.objects.get(organization=org, role=Role.OWNER).user
    for _ in range(n):
        other = Organization.objects.create(name=unique("Org"), slug=unique("org"))
        Membership.objects.create(organization=other, user=user, role=Role.ADMIN)


# (url, how to add n rows, pinned query count: session user, membership, count, page, ...)
LISTS = [
    pytest.param(f"{API}/organizations/", add_organizations, 4, id="organizations"),
    pytest.param(f"{API}/organizations/acme/members/", add_members, 4, id="members"),
    pytest.param(f"{API}/providers/", add_providers, 4, id="providers"),
    pytest.param(f"{API}/models/", add_models, 4, id="models"),
    pytest.param(f"{API}/api-keys/", add_credentials, 4, id="api-keys"),
    pytest.param(f"{API}/client-keys/", add_client_keys, 4, id="client-keys"),
    pytest.param(f"{API}/routing-rules/", add_rules, 5, id="routing-rules"),
    pytest.param(f"{API}/metrics/", add_metrics, 3, id="metrics"),
    pytest.param(f"{API}/audit-log/", add_rules, 4, id="audit-log"),
    pytest.param(f"{API}/api-keys/usage_summary/", add_credentials, 3, id="usage_summary"),
    pytest.param(f"{API}/api-keys/health_status/", add_credentials, 4, id="health_status"),
    pytest.param(f"{API}/metrics/cost_summary/", add_metrics, 6, id="cost_summary"),
    pytest.param(f"{API}/metrics/optimization_stats/", add_metrics, 6, id="optimization_stats"),
]


def queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"page_size": 200})
    assert response.status_code == 200, response.json()
    return len(captured)


@pytest.mark.parametrize(("url", "add", "expected"), LISTS)
def test_list_query_count_does_not_grow(url, add, expected, org, owner, api_client):
    client = api_client(owner, org)
    add(org, 3)
    small = queries(client, url)
    add(org, 27)
    large = queries(client, url)
    assert small == large == expected


def test_dashboard_query_count_does_not_grow(org, owner, api_client):
    client = api_client(owner, org)
    url = f"{API}/metrics/dashboard_summary/"
    add_metrics(org, 3)
    add_credentials(org, 3)
    small = queries(client, url)
    add_metrics(org, 27)
    add_credentials(org, 27)
    assert queries(client, url) == small
