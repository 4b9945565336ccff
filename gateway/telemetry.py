"""Prometheus metrics of the gateway, safe with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the workers start), prometheus_client keeps
each process's values in files there and ``/metrics`` aggregates them; without it the
process's own registry is served.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from modelhub.models import ErrorSource

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "gateway_requests_total",
    "Gateway requests by endpoint, served provider and model, and status code.",
    ["endpoint", "provider", "model", "status"],
)
LATENCY = Histogram(
    "gateway_request_duration_seconds",
    "Time from receiving a request to its last byte, by provider and model.",
    ["endpoint", "provider", "model"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gateway_time_to_first_token_seconds",
    "Time to the first streamed chunk, by provider and model.",
    ["provider", "model"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "gateway_tokens_total",
    "Tokens used, by provider, model and direction (input or output).",
    ["provider", "model", "direction"],
)
COST = Counter(
    "gateway_cost_usd_total",
    "Cost in USD at the catalog's prices, by provider and model.",
    ["provider", "model"],
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors_total",
    "Failed upstream attempts, by provider, model and kind (timeout, connection, status).",
    ["provider", "model", "kind"],
)
METRIC_ROWS_DROPPED = Counter(
    "gateway_metric_rows_dropped_total",
    "Metric rows that could not be written to the database, by reason "
    "(organization_deleted, invalid_row, queue_full, database_unreachable).",
    ["reason"],
)

# Per-tenant series. The ``organization`` label is the organization's slug (never a client
# key or a private name), so each of these grows with the number of organizations times a
# small fixed set of endpoints, status classes, directions and kinds: bounded by tenants.
ORGANIZATION_REQUESTS = Counter(
    "gateway_organization_requests_total",
    "Gateway requests by organization, endpoint and status class (2xx, 4xx, 5xx).",
    ["organization", "endpoint", "status_class"],
)
ORGANIZATION_TOKENS = Counter(
    "gateway_organization_tokens_total",
    "Tokens used by organization and direction (input or output).",
    ["organization", "direction"],
)
ORGANIZATION_COST = Counter(
    "gateway_organization_cost_usd_total",
    "Cost in USD at the catalog's prices, by organization.",
    ["organization"],
)
ORGANIZATION_ERRORS = Counter(
    "gateway_organization_errors_total",
    "Failed requests by organization and kind: client (the caller's own 4xx: bad input, "
    "auth, rate limit or budget), provider (the upstream failed) or gateway (our own 5xx).",
    ["organization", "kind"],
)
ORGANIZATION_FALLBACKS = Counter(
    "gateway_organization_fallbacks_total",
    "Fallbacks to a further candidate after a failed attempt, by organization.",
    ["organization"],
)

ERROR_CLIENT = ErrorSource.CLIENT.value
ERROR_PROVIDER = ErrorSource.PROVIDER.value
ERROR_GATEWAY = ErrorSource.GATEWAY.value


def error_kind(status: int, error_type: str, attempts: int) -> str | None:
    """Whose failure a finished request is (see ``ErrorSource.of``, which the request
    log stores), or ``None`` for a success."""
    return ErrorSource.of(status_code=status, error_type=error_type, attempts=attempts) or None


# The label that stands for every organization's private providers and models: their
# names are the tenant's business, and tenants can create them without bound.
PRIVATE_LABEL = "private"


def series_labels(provider: str, model: str, *, is_global: bool) -> tuple[str, str]:
    """``(provider, model)`` labels of a series: global catalog names as they are, every
    org-private provider and model folded into one label, so the series stay few."""
    if is_global:
        return provider, model
    return PRIVATE_LABEL, PRIVATE_LABEL


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
