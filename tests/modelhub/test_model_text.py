"""How rows read in the admin and in logs, and how refusals carry their cause."""

from __future__ import annotations

from datetime import date

import pytest
import requests
import responses

from modelhub import outbound
from modelhub.models import MetricDaily, MetricDailyLatency, RoutingTarget
from sync.fetch import FetchError, fetch_page
from tests.support.builders import make_model, make_provider, make_rule


@pytest.mark.django_db
def test_routing_target_names_its_position_model_and_weight(org):
    model = make_model(make_provider(org))
    rule = make_rule(org, [(model, None, 3)])
    target = RoutingTarget.objects.get(rule=rule)
    assert str(target) == f"#0: model {model.pk} (weight 3)"


@pytest.mark.django_db
def test_daily_rollups_name_their_day_and_organization(org):
    daily = MetricDaily(organization=org, day=date(2026, 1, 2), requests=7)
    latency = MetricDailyLatency(
        organization=org, day=date(2026, 1, 2), provider_pk=5, bucket=3, count=4
    )
    assert str(daily) == f"2026-01-02 organization {org.pk}: 7 requests"
    assert str(latency) == f"2026-01-02 organization {org.pk} provider 5: 4 in bucket 3"


def test_a_refused_url_hides_the_parser_error_behind_its_reason():
    with pytest.raises(outbound.OutboundURLRefused) as refused:
        outbound.check_url("http://example.com:99999/")
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


@responses.activate
def test_a_failed_fetch_does_not_chain_the_connection_error_and_its_url():
    url = "https://models.example.test/v1/models?key=sk-secret-in-url"
    responses.add(responses.GET, url, body=requests.ConnectionError(f"refused: {url}"))
    with pytest.raises(FetchError) as failed:
        fetch_page(requests.Session(), url, headers={}, secret="sk-secret-in-url")
    assert failed.value.__cause__ is None
    assert failed.value.__suppress_context__
    assert "sk-secret" not in str(failed.value)
