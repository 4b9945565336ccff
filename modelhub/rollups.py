"""Daily rollups of request metrics: written with the metrics, read by the dashboard.

Each batch of metrics is folded into per-day rows with one upsert statement per table
(``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``, which PostgreSQL and
SQLite both speak), so the dashboard aggregates a few thousand daily rows instead of
millions of requests. On PostgreSQL the gateway's writer has the database fold the rows
in the statement that inserts them (``fold_in_database``); elsewhere they are folded
here (``add_metrics``). ``rebuild`` computes the same sums from the rows. Latency
percentiles come from bucket counts, as Prometheus histograms do: a percentile is
reported as the upper bound of its bucket.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate

from modelhub.models import (
    ErrorSource,
    MetricDaily,
    MetricDailyLatency,
    ModelMetric,
    Organization,
)
from modelhub.tenancy import ALL_ORGANIZATIONS, AllOrganizations

# Upper bounds, in milliseconds, of the latency buckets; the last bucket is open-ended.
LATENCY_BUCKETS_MS = (
    25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 600, 750, 1000, 1250, 1500, 2000, 2500,
    3000, 4000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
OVERFLOW_BUCKET = len(LATENCY_BUCKETS_MS)

USAGE_COLUMNS = (
    "requests", "errors", "input_tokens", "output_tokens", "total_tokens", "cost",
    "latency_sum_ms", "successes", "fallbacks", "client_errors", "provider_errors",
)  # fmt: skip
USAGE_KEY = ("organization_id", "day", "provider_pk", "model_pk", "client_key_pk", "served_model")
LATENCY_KEY = ("organization_id", "day", "provider_pk", "bucket")


def latency_bucket(latency_ms: int) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def bucket_upper_bound(bucket: int) -> int | None:
    """The bucket's upper bound in ms; None for the open-ended last bucket."""
    return LATENCY_BUCKETS_MS[bucket] if bucket < OVERFLOW_BUCKET else None


def percentile_from_buckets(counts: dict[int, int], percent: int) -> int | None:
    """Nearest-rank percentile over bucket counts, as the upper bound of its bucket."""
    total = sum(counts.values())
    if not total:
        return None
    rank = (total * percent + 99) // 100
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_upper_bound(bucket) or LATENCY_BUCKETS_MS[-1]
    return None


def _day(metric: ModelMetric) -> date:
    return metric.created_at.astimezone(UTC).date()


def _adding(table: str, key: tuple[str, ...], columns: tuple[str, ...], rows: str) -> str:
    """``INSERT`` of ``rows`` (a ``VALUES`` list or a ``SELECT``) that adds each counter
    to the row already there for its key."""
    quote = connection.ops.quote_name
    names = ", ".join(quote(c) for c in (*key, *columns))
    updates = ", ".join(
        f"{quote(c)} = {quote(table)}.{quote(c)} + excluded.{quote(c)}" for c in columns
    )
    return (
        f"INSERT INTO {quote(table)} ({names}) {rows}"
        f" ON CONFLICT ({', '.join(quote(c) for c in key)}) DO UPDATE SET {updates}"
    )


def _upsert(table: str, key: tuple[str, ...], columns: tuple[str, ...], rows: list[tuple]) -> None:
    if not rows:
        return
    placeholders = "(" + ", ".join(["%s"] * (len(key) + len(columns))) + ")"
    sql = _adding(table, key, columns, "VALUES " + ", ".join([placeholders] * len(rows)))
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


# What the database folds for a rollup, from rows with ModelMetric's columns
# (``fold_in_database``); the same sums as ``add_metrics`` below.
_DAY = "(created_at AT TIME ZONE 'UTC')::date"
_USAGE_FOLD = (
    "organization_id", _DAY, "COALESCE(provider_id, 0)", "COALESCE(model_id, 0)",
    "COALESCE(client_key_id, 0)", "served_model",
    "count(*)", "count(*) FILTER (WHERE NOT success)", "sum(input_tokens)",
    "sum(output_tokens)", "sum(total_tokens)", "sum(cost)",
    "COALESCE(sum(latency_ms) FILTER (WHERE success), 0)", "count(*) FILTER (WHERE success)",
    "sum(fallbacks_used)", "count(*) FILTER (WHERE error_source = %s)",
    "count(*) FILTER (WHERE error_source = %s)",
)  # fmt: skip
# latency_bucket() in SQL: for integers, the bounds below ``ms`` are the bounds up to ms - 1.
_LATENCY_FOLD = (
    "organization_id", _DAY, "COALESCE(provider_id, 0)",
    "width_bucket(latency_ms - 1, ARRAY[" + ", ".join(map(str, LATENCY_BUCKETS_MS)) + "])",
    "count(*)",
)  # fmt: skip
METRIC_FOLD_COLUMNS = (
    "organization_id", "created_at", "provider_id", "model_id", "client_key_id", "served_model",
    "success", "input_tokens", "output_tokens", "total_tokens", "cost", "latency_ms",
    "fallbacks_used", "error_source",
)  # fmt: skip


def fold_in_database(source: str) -> tuple[str, list]:
    """Common table expressions that fold the rows of the query named ``source`` into
    both rollups, for a statement that writes the rows and their rollups at once
    (PostgreSQL): ``WITH source AS (...), <these>`` then ``SELECT``. The source must
    give the ``METRIC_FOLD_COLUMNS``. The params of the expressions are returned with
    them."""

    def grouped(fold: tuple[str, ...], keys: int, where: str = "") -> str:
        # In key order: two workers folding at once lock the rows they share in the same
        # order, so neither waits for the other while holding a row it needs.
        positions = ", ".join(str(n) for n in range(1, keys + 1))
        return (
            f"SELECT {', '.join(fold)} FROM {source}{where} "  # noqa: S608 - identifiers are ours
            f"GROUP BY {positions} ORDER BY {positions}"
        )

    usage = _adding(
        MetricDaily._meta.db_table, USAGE_KEY, USAGE_COLUMNS, grouped(_USAGE_FOLD, len(USAGE_KEY))
    )
    latency = _adding(
        MetricDailyLatency._meta.db_table,
        LATENCY_KEY,
        ("count",),
        grouped(_LATENCY_FOLD, len(LATENCY_KEY), " WHERE success"),
    )
    return (
        f"folded_usage AS ({usage}), folded_latency AS ({latency})",
        [ErrorSource.CLIENT.value, ErrorSource.PROVIDER.value],
    )


def add_metrics(metrics: Iterable[ModelMetric], chunk: int = 200) -> None:
    """Fold freshly written metrics into the daily rollups."""
    usage: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0, 0, 0, 0, 0])
    latency: dict[tuple, int] = defaultdict(int)
    for metric in metrics:
        day = _day(metric)
        provider = metric.provider_id or 0
        key = (
            metric.organization_id,
            day,
            provider,
            metric.model_id or 0,
            metric.client_key_id or 0,
            metric.served_model or "",
        )
        totals = usage[key]
        totals[0] += 1
        totals[1] += 0 if metric.success else 1
        totals[2] += metric.input_tokens
        totals[3] += metric.output_tokens
        totals[4] += metric.total_tokens
        totals[5] += Decimal(metric.cost)
        if metric.success:
            totals[6] += metric.latency_ms
            totals[7] += 1
            latency[(metric.organization_id, day, provider, latency_bucket(metric.latency_ms))] += 1
        totals[8] += metric.fallbacks_used
        totals[9] += metric.error_source == ErrorSource.CLIENT
        totals[10] += metric.error_source == ErrorSource.PROVIDER
    usage_rows = [(*key, *values) for key, values in usage.items()]
    latency_rows = [(*key, count) for key, count in latency.items()]
    with transaction.atomic():
        for start in range(0, len(usage_rows), chunk):
            _upsert(
                MetricDaily._meta.db_table,
                USAGE_KEY,
                USAGE_COLUMNS,
                usage_rows[start : start + chunk],
            )
        for start in range(0, len(latency_rows), chunk):
            _upsert(
                MetricDailyLatency._meta.db_table,
                LATENCY_KEY,
                ("count",),
                latency_rows[start : start + chunk],
            )


@transaction.atomic
def rebuild(
    *, organization: Organization | None = None, start: date | None = None, end: date | None = None
) -> int:
    """Recompute the rollups of a day range from the requests (all of them by default).

    For operators after an import or a manual fix of metric rows; the database groups
    the requests, Python only hands the grouped rows back.
    """
    # Every organization's, unless one is named (narrowed below).
    metrics = ModelMetric.objects.across_tenants(reason="rebuild of the rollups")
    usage = MetricDaily.objects.all()
    latency = MetricDailyLatency.objects.all()
    if organization is not None:
        metrics = metrics.filter(organization=organization)
        usage = usage.filter(organization=organization)
        latency = latency.filter(organization=organization)
    metrics = metrics.annotate(day=TruncDate("created_at", tzinfo=UTC))
    if start:
        metrics, usage, latency = (
            metrics.filter(day__gte=start),
            usage.filter(day__gte=start),
            latency.filter(day__gte=start),
        )
    if end:
        metrics, usage, latency = (
            metrics.filter(day__lte=end),
            usage.filter(day__lte=end),
            latency.filter(day__lte=end),
        )
    usage.delete()
    latency.delete()
    grouped = metrics.values(
        "organization_id", "day", "provider_id", "model_id", "client_key_id", "served_model"
    ).annotate(
        n=Count("id"),
        n_errors=Count("id", filter=Q(success=False)),
        n_input=Coalesce(Sum("input_tokens"), 0),
        n_output=Coalesce(Sum("output_tokens"), 0),
        n_total=Coalesce(Sum("total_tokens"), 0),
        n_cost=Coalesce(Sum("cost"), Decimal(0)),
        n_latency=Coalesce(Sum("latency_ms", filter=Q(success=True)), 0),
        n_successes=Count("id", filter=Q(success=True)),
        n_fallbacks=Coalesce(Sum("fallbacks_used"), 0),
        n_client_errors=Count("id", filter=Q(error_source=ErrorSource.CLIENT)),
        n_provider_errors=Count("id", filter=Q(error_source=ErrorSource.PROVIDER)),
    )
    created = MetricDaily.objects.bulk_create(
        (
            MetricDaily(
                organization_id=row["organization_id"],
                day=row["day"],
                provider_pk=row["provider_id"] or 0,
                model_pk=row["model_id"] or 0,
                client_key_pk=row["client_key_id"] or 0,
                served_model=row["served_model"],
                requests=row["n"],
                errors=row["n_errors"],
                input_tokens=row["n_input"],
                output_tokens=row["n_output"],
                total_tokens=row["n_total"],
                cost=row["n_cost"],
                latency_sum_ms=row["n_latency"],
                successes=row["n_successes"],
                fallbacks=row["n_fallbacks"],
                client_errors=row["n_client_errors"],
                provider_errors=row["n_provider_errors"],
            )
            for row in grouped.order_by()
        ),
        batch_size=1000,
    )
    # Latency buckets: group by the latency value in the database, bucket in Python (the
    # distinct latencies per provider and day are few compared with the requests).
    buckets: dict[tuple, int] = defaultdict(int)
    for row in (
        metrics.filter(success=True)
        .values("organization_id", "day", "provider_id", "latency_ms")
        .annotate(n=Count("id"))
        .order_by()
    ):
        key = (
            row["organization_id"],
            row["day"],
            row["provider_id"] or 0,
            latency_bucket(row["latency_ms"]),
        )
        buckets[key] += row["n"]
    MetricDailyLatency.objects.bulk_create(
        (
            MetricDailyLatency(organization_id=o, day=d, provider_pk=p, bucket=b, count=n)
            for (o, d, p, b), n in buckets.items()
        ),
        batch_size=1000,
    )
    return len(created)


def _of(queryset, organization: Organization | AllOrganizations):
    # The staff view sums every organization's rows; anything else is one organization's.
    if organization is ALL_ORGANIZATIONS:
        return queryset
    return queryset.filter(organization=organization)


def daily_rows(organization: Organization | AllOrganizations, start: date, end: date):
    return _of(MetricDaily.objects.filter(day__gte=start, day__lte=end), organization)


def latency_rows(organization: Organization | AllOrganizations, start: date, end: date):
    return _of(MetricDailyLatency.objects.filter(day__gte=start, day__lte=end), organization)
