"""The Grafana dashboard in deploy/grafana/ queries only series the gateway exposes."""

from __future__ import annotations

import contextlib
import json
import re
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from gateway import telemetry
from modelhub.models import SyncRun, SyncStatus
from tests.support.gateway import wait_for
from tests.support.upstream import Action

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "modelhub.json"
MESSAGES = [{"role": "user", "content": "hi"}]
MODEL = "alpha/llama-3.1-8b"

# What is not a metric name in an expression: label matchers, grouping clauses, range
# and offset durations, string literals, dashboard variables, function calls, keywords.
LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
RANGES = re.compile(r"\[[^\]]*\]")
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
VARIABLES = re.compile(r"\$\{?\w+\}?")
IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    for pattern in (STRINGS, LABEL_MATCHERS, GROUPING, RANGES, VARIABLES):
        expression = pattern.sub(" ", expression)
    return {name for name in IDENTIFIER.findall(expression) if name not in KEYWORDS}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = []

    def walk(panels):
        for panel in panels:
            expressions.extend(target["expr"] for target in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query or "")
        if match:
            expressions.append(match.group(1))
    return expressions


def test_metric_names_are_parsed_from_promql():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, provider) (rate(a_bucket{x=~"$o"}[$__rate_interval])))'
    ) == {"a_bucket"}
    assert metric_names('time() - b_seconds / c_usd{k="v"} offset 5m') == {"b_seconds", "c_usd"}
    assert metric_names("topk(10, sum by (p) (increase(d_total[$__range])))") == {"d_total"}


def test_the_dashboard_covers_what_operators_watch():
    names = set().union(*(metric_names(e) for e in dashboard_expressions()))
    for wanted in (
        "gateway_organization_requests_total",
        "gateway_organization_tokens_total",
        "gateway_organization_cost_usd_total",
        "gateway_organization_errors_total",
        "gateway_organization_fallbacks_total",
        "gateway_organization_budget_remaining_usd",
        "gateway_organization_credentials",
        "gateway_provider_last_sync_timestamp_seconds",
        "gateway_request_duration_seconds_bucket",
        "gateway_time_to_first_token_seconds_bucket",
    ):
        assert wanted in names


@pytest.mark.usefixtures("catalog")
def test_every_queried_metric_is_exposed_after_traffic(
    gateway, gateway_settings, upstream, client, make_key
):
    gateway_settings.METRICS_GAUGE_REFRESH_SECONDS = 0
    telemetry.GAUGES.taken_at = float("-inf")
    SyncRun.objects.create(
        provider_slug="alpha", status=SyncStatus.SUCCESS, finished_at=timezone.now()
    )
    capped = make_key(name="capped", budget_amount=Decimal("5"))
    openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=capped.raw_key, max_retries=0
    ).chat.completions.create(model=MODEL, messages=MESSAGES)
    # A streamed request, read to its end: the streaming series (time to first token).
    list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    # The first candidate fails, the fallback serves.
    upstream.script("llama-3.1-8b", Action("status", status=500), Action("status", status=500))
    client.chat.completions.create(model=MODEL, messages=MESSAGES)

    def exposed() -> set[str]:
        text = httpx.get(f"{gateway.url}/metrics").text
        return {
            sample.name
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    queried = set().union(*(metric_names(e) for e in dashboard_expressions()))
    # Usage is recorded right after each response: wait until every series is there.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: queried <= exposed(), timeout=5)
    assert sorted(queried - exposed()) == []
