"""Prometheus metrics of the gateway, safe with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the workers start), prometheus_client keeps
each process's values in files there and ``/metrics`` aggregates them; without it the
process's own registry is served.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from modelhub.selectors import TelemetrySnapshot

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
LIMIT_SETTLE_FLUSHES = Counter(
    "gateway_limit_settle_flushes_total",
    "Writes of queued limit settles to Redis (alone or with reservations), by outcome (ok, error).",
    ["outcome"],
)
LIMIT_SETTLES_DROPPED = Counter(
    "gateway_limit_settles_dropped_total",
    "Limit settles given up (their requests keep their worst-case reservation until the "
    "window ends), by reason (redis_error: failed twice, queue_full).",
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


class TenantGauges(Collector):
    """Gauges read from the database: budget remaining and credential health per
    organization, and the last successful catalog sync per provider.

    ``collect`` runs inside ``generate_latest`` on the event loop, so it only formats the
    last snapshot; the ``/metrics`` view refreshes that snapshot on a database thread when
    it is older than ``METRICS_GAUGE_REFRESH_SECONDS``. Gateway requests never read it.
    Every process computes the same values from the same rows, so the gauges are served
    as they are, also beside the multiprocess collector.
    """

    def __init__(self) -> None:
        self.snapshot: TelemetrySnapshot | None = None
        self.taken_at = float("-inf")

    def is_stale(self, max_age: float) -> bool:
        return time.monotonic() - self.taken_at >= max_age

    def update(self, snapshot: TelemetrySnapshot) -> None:
        self.snapshot = snapshot
        self.taken_at = time.monotonic()

    def describe(self) -> Iterator[Metric]:
        # Nothing to describe at registration: the families come from the database.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        if snapshot is None:
            return
        budget = GaugeMetricFamily(
            "gateway_organization_budget_usd",
            "Budget of the current period in USD, by organization and source: the "
            "organization's own budget, or the sum over its client keys that have one.",
            labels=["organization", "source"],
        )
        remaining = GaugeMetricFamily(
            "gateway_organization_budget_remaining_usd",
            "Budget left in the current period in USD (from the gateway's live counters), "
            "by organization and source (organization or client_keys).",
            labels=["organization", "source"],
        )
        for gauge in snapshot.budgets:
            budget.add_metric([gauge.organization_slug, gauge.source], float(gauge.budget))
            remaining.add_metric([gauge.organization_slug, gauge.source], float(gauge.remaining))
        credentials = GaugeMetricFamily(
            "gateway_organization_credentials",
            "Provider credentials by organization and health status.",
            labels=["organization", "health"],
        )
        for (organization, health), count in sorted(snapshot.credential_health.items()):
            credentials.add_metric([organization, health], count)
        # Org-private providers fold into one series (their latest sync), like the others.
        last_sync: dict[str, float] = {}
        for sync in snapshot.last_syncs:
            label, _ = series_labels(sync.provider_slug, "", is_global=sync.is_global)
            last_sync[label] = max(last_sync.get(label, 0.0), sync.last_success.timestamp())
        synced = GaugeMetricFamily(
            "gateway_provider_last_sync_timestamp_seconds",
            "Unix time of the last successful catalog sync, by provider.",
            labels=["provider"],
        )
        for provider, timestamp in sorted(last_sync.items()):
            synced.add_metric([provider], timestamp)
        yield from (budget, remaining, credentials, synced)


class CounterBuffer:
    """Counter increments and histogram observations of finished requests, added to their
    series together.

    Adding to a series costs a label lookup, a lock and, with several workers, a write to
    the process's mmapped file (after a check of the process id, a system call): for the
    eight or so counters of a request, several percent of its time on the event loop,
    and as much again for a duration, which adds to a histogram's sum and one bucket.
    Held here, a counter gets the sum of a batch in one addition, and a histogram one
    addition to its sum and to each bucket that was hit, when the request recorder
    flushes its rows and before this process answers ``/metrics``; the series of other
    workers may lag by up to GATEWAY_METRICS_FLUSH_SECONDS. One buffer per event loop: it
    is only used from its loop.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[Counter, tuple[str, ...]], float] = {}
        # (histogram, labels) -> [sum of the values, count of values per bucket]
        self.observed: dict[tuple[Histogram, tuple[str, ...]], list] = {}

    def add(self, counter: Counter, labels: tuple[str, ...], amount: float = 1) -> None:
        key = (counter, labels)
        self.pending[key] = self.pending.get(key, 0) + amount

    def observe(self, histogram: Histogram, labels: tuple[str, ...], value: float) -> None:
        """``histogram.labels(*labels).observe(value)``, added with the next ``apply``. It
        reads the histogram's ``_upper_bounds`` and, when applied, its child's ``_sum``
        and ``_buckets``, which ``observe`` updates (a test compares the two ways)."""
        bounds = histogram._upper_bounds
        tally = self.observed.get((histogram, labels))
        if tally is None:
            tally = self.observed[histogram, labels] = [0.0, [0] * len(bounds)]
        tally[0] += value
        # The first bucket whose upper bound is at least the value, as observe finds it.
        tally[1][bisect_left(bounds, value)] += 1

    def apply(self) -> None:
        pending, self.pending = self.pending, {}
        for (counter, labels), amount in pending.items():
            counter.labels(*labels).inc(amount)
        observed, self.observed = self.observed, {}
        for (histogram, labels), (total, hits) in observed.items():
            child = histogram.labels(*labels)
            child._sum.inc(total)
            for bucket, count in zip(child._buckets, hits, strict=True):
                if count:
                    bucket.inc(count)


GAUGES = TenantGauges()
REGISTRY.register(GAUGES)


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(GAUGES)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
