"""Multi-step reads of the domain, shared by the API, the evaluator and the other apps."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, Count, DecimalField, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from modelhub import rollups
from modelhub.budgets import (
    CLIENT_KEY,
    NEVER,
    ORGANIZATION,
    BudgetStatus,
    budget_period_bounds,
    counters_redis_url,
    from_picodollars,
    spend_counter,
)
from modelhub.models import (
    ClientKey,
    HealthStatus,
    LimitCounter,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    StoredResponse,
    SyncRun,
    SyncStatus,
    Webhook,
    WebhookEvent,
    responses_retention_cutoff,
)
from modelhub.quotas import quota_states
from modelhub.tenancy import ALL_ORGANIZATIONS

# The tag Ollama means when a model is named without one.
OLLAMA_DEFAULT_TAG = "latest"


def resolve_model_names_q(names: Iterable[str]) -> Q:
    """Models that may be named by any of ``names``: ``provider_slug/provider_model_id``, a
    provider's own id (``meta-llama/llama-3.1-8b-instruct`` on OpenRouter) or a canonical
    slug. Two indexed ``IN`` lookups; callers check the provider slug of the first form."""
    names = set(names)
    ids = names | {name.partition("/")[2] for name in names if "/" in name}
    # Ollama lists "llama2:latest" for what its clients call "llama2".
    ids |= {f"{name}:{OLLAMA_DEFAULT_TAG}" for name in ids if name and ":" not in name}
    return Q(provider_model_id__in=ids - {""}) | Q(canonical_slug__in=names)


# Upper bound on the models gathered as the same weights at other providers.
MAX_EQUIVALENTS = 200


def normalised_name(model_id: str) -> str:
    """The comparable core of a model id: no author or path prefix, no ``:variant``,
    no ``-free`` suffix, lower case (``meta-llama/Llama-3.3-70B-Instruct:free`` ->
    ``llama-3.3-70b-instruct``)."""
    name = model_id.strip().lower().lstrip("~").rsplit("/", 1)[-1].split(":", 1)[0]
    return name.removesuffix("-free")


# Characters with a meaning in the regular expressions of both PostgreSQL and SQLite.
_REGEX_SPECIALS = re.compile(r"[.^$*+?()\[\]{}|\\]")


def normalised_name_regex(names: Iterable[str]) -> str:
    """A case-insensitive pattern for the ids whose :func:`normalised_name` is one of
    ``names``."""
    alternatives = "|".join(sorted(_REGEX_SPECIALS.sub(r"\\\g<0>", name) for name in names))
    return rf"^~?(.*/)?({alternatives})(-free)?(:.*)?$"


def model_names(model: Model) -> set[str]:
    """Every normalised name a model is known by: its id, Hugging Face id, canonical id."""
    names = {normalised_name(model.provider_model_id)}
    if model.hugging_face_id:
        names.add(normalised_name(model.hugging_face_id))
    if model.canonical_slug:
        names.add(normalised_name(model.canonical_slug))
    return names - {""}


def is_same_model(reference: Model, other: Model) -> bool:
    """Whether ``other`` sells the same weights as ``reference``: the same canonical id, the
    same Hugging Face id, or a normalised name in common."""
    if reference.canonical_slug and other.canonical_slug == reference.canonical_slug:
        return True
    reference_hf = reference.hugging_face_id.lower()
    if reference_hf and other.hugging_face_id.lower() == reference_hf:
        return True
    return bool(model_names(other) & model_names(reference))


def equivalent_models(references: Sequence[Model], queryset: QuerySet[Model]) -> list[Model]:
    """The models of ``queryset`` that are the same weights as any of ``references`` (the
    references themselves included), in at most four queries whatever their number.

    Each candidate search reads one narrow, indexed column (the per-provider unique index
    carries ``provider_model_id``) instead of scanning the wide model rows; only the
    matches are then loaded in full and checked with :func:`is_same_model`.
    """
    reference_ids = {model.pk for model in references}
    if not references:
        return []
    names = set().union(*(model_names(model) for model in references))
    candidate_ids = set(reference_ids)
    if names:
        # The substring test can use a trigram index on PostgreSQL; the pattern then keeps
        # only the ids that normalise to one of the names, so the bound never cuts true
        # equivalents in favour of ids that merely contain a name.
        contains = Q(pk__in=[])
        for name in names:
            contains |= Q(provider_model_id__icontains=name)
        # Candidate ids only, from every organization's models: ``queryset`` (the
        # caller's scope) decides which of them are returned.
        candidate_ids.update(
            Model.objects.across_tenants(reason="equivalent candidates, scoped below")
            .filter(contains)
            .filter(provider_model_id__iregex=normalised_name_regex(names))
            .order_by()
            .values_list("id", flat=True)[:MAX_EQUIVALENTS]
        )
    # Exact spellings keep these index seeks; other casings of the same weights are still
    # found through their normalised provider ids above.
    spellings = {m.hugging_face_id for m in references if m.hugging_face_id}
    spellings |= {spelling.lower() for spelling in spellings}
    if spellings:
        candidate_ids.update(
            Model.objects.across_tenants(reason="equivalent candidates, scoped below")
            .filter(hugging_face_id__in=spellings)
            .order_by()
            .values_list("id", flat=True)[:MAX_EQUIVALENTS]
        )
    slugs = {m.canonical_slug for m in references if m.canonical_slug}
    if slugs:
        candidate_ids.update(
            Model.objects.across_tenants(reason="equivalent candidates, scoped below")
            .filter(canonical_slug__in=slugs)
            .order_by()
            .values_list("id", flat=True)[:MAX_EQUIVALENTS]
        )
    candidates = queryset.filter(pk__in=candidate_ids).order_by("id")
    return [
        model
        for model in candidates
        if model.pk in reference_ids or any(is_same_model(ref, model) for ref in references)
    ]


# --- Metric reports -----------------------------------------------------------------------
# Every report aggregates in the database; Python only reshapes the grouped rows.

DEFAULT_REPORT_DAYS = 30
TOP_N = 10


def report_range(start=None, end=None) -> tuple:
    end = end or timezone.now()
    start = start or end - timedelta(days=DEFAULT_REPORT_DAYS)
    return start, end


def metrics_in_range(organization, start, end):
    return ModelMetric.objects.for_org(organization).filter(
        created_at__gte=start, created_at__lte=end
    )


def _usage_aggregates():
    return {
        "requests": Count("id"),
        "tokens": Coalesce(Sum("total_tokens"), 0),
        "cost": Coalesce(Sum("cost"), Decimal(0), output_field=DecimalField()),
    }


def cost_by_model(metrics, limit=None) -> list[dict]:
    rows = (
        metrics.values("model", "served_model")
        .annotate(**_usage_aggregates())
        .order_by("-cost", "-requests", "served_model")
    )
    return list(rows[:limit] if limit else rows)


def cost_by_provider(metrics) -> list[dict]:
    return list(
        metrics.values("provider", provider_slug=F("provider__slug"))
        .annotate(**_usage_aggregates())
        .order_by("-cost", "-requests")
    )


def daily_series(metrics) -> list[dict]:
    return list(
        metrics.annotate(date=TruncDate("created_at"))
        .values("date")
        .annotate(**_usage_aggregates(), errors=Count("id", filter=Q(success=False)))
        .order_by("date")
    )


def cost_summary(*, organization, start=None, end=None) -> dict:
    start, end = report_range(start, end)
    metrics = metrics_in_range(organization, start, end)
    totals = metrics.aggregate(**_usage_aggregates())
    return {
        "start": start,
        "end": end,
        "total_cost": totals["cost"],
        "total_requests": totals["requests"],
        "total_tokens": totals["tokens"],
        "by_model": cost_by_model(metrics),
        "by_provider": cost_by_provider(metrics),
        "by_day": daily_series(metrics),
    }


def optimization_stats(*, organization, start=None, end=None) -> dict:
    """How routing paid off: requests served by another model, fallbacks, and what the
    requested model would have cost for the same tokens."""
    start, end = report_range(start, end)
    metrics = metrics_in_range(organization, start, end)
    rerouted = (
        metrics.filter(success=True)
        .exclude(served_model="")
        .exclude(served_model=F("requested_model"))
    )
    totals = metrics.aggregate(
        total=Count("id"),
        with_fallback=Count("id", filter=Q(fallbacks_used__gt=0)),
        fallbacks=Coalesce(Sum("fallbacks_used"), 0),
    )
    groups = list(
        rerouted.values("requested_model")
        .annotate(
            requests=Count("id"),
            input_tokens=Coalesce(Sum("input_tokens"), 0),
            output_tokens=Coalesce(Sum("output_tokens"), 0),
            actual_cost=Coalesce(Sum("cost"), Decimal(0), output_field=DecimalField()),
        )
        .order_by("-requests", "requested_model")
    )
    prices = requested_model_prices(organization, [g["requested_model"] for g in groups])
    savings_rows, total_savings = [], Decimal(0)
    for group in groups:
        price = prices.get(group["requested_model"])
        hypothetical = savings = None
        if price is not None:
            hypothetical = group["input_tokens"] * price[0] + group["output_tokens"] * price[1]
            savings = hypothetical - group["actual_cost"]
            total_savings += savings
        savings_rows.append(
            {
                "requested_model": group["requested_model"],
                "requests": group["requests"],
                "actual_cost": group["actual_cost"],
                "requested_model_cost": hypothetical,
                "savings": savings,
            }
        )
    latency = list(
        metrics.filter(success=True)
        .values("strategy")
        .annotate(requests=Count("id"), avg_latency_ms=Avg("latency_ms"))
        .order_by("strategy")
    )
    return {
        "start": start,
        "end": end,
        "total_requests": totals["total"],
        "rerouted_requests": sum(g["requests"] for g in groups),
        "requests_with_fallback": totals["with_fallback"],
        "fallbacks_taken": totals["fallbacks"],
        "estimated_savings": total_savings,
        "savings_by_requested_model": savings_rows,
        "latency_by_strategy": [{**row, "strategy": row["strategy"] or "none"} for row in latency],
    }


def requested_model_prices(organization, names) -> dict[str, tuple[Decimal, Decimal]]:
    """Prompt and completion price of the model each requested name resolves to (the
    cheapest priced match), in one query."""
    names = [n for n in set(names) if n]
    if not names:
        return {}
    found: dict[str, tuple[Decimal, Decimal]] = {}
    candidates = (
        Model.objects.visible_to(organization)
        .filter(resolve_model_names_q(names))
        .filter(pricing_prompt__isnull=False, pricing_completion__isnull=False)
        .select_related("provider")
        .order_by("pricing_prompt", "pricing_completion", "id")
    )
    for model in candidates:
        for name in names:
            if name in found:
                continue
            slug, _, rest = name.partition("/")
            if name in (model.provider_model_id, model.canonical_slug) or (
                slug == model.provider.slug and rest == model.provider_model_id
            ):
                found[name] = (model.pricing_prompt, model.pricing_completion)
    return found


def _rollup_aggregates():
    return {
        "requests": Coalesce(Sum("requests"), 0),
        "errors": Coalesce(Sum("errors"), 0),
        "client_errors": Coalesce(Sum("client_errors"), 0),
        "provider_errors": Coalesce(Sum("provider_errors"), 0),
        "tokens": Coalesce(Sum("total_tokens"), 0),
        "cost": Coalesce(Sum("cost"), Decimal(0), output_field=DecimalField()),
        "fallbacks": Coalesce(Sum("fallbacks"), 0),
        "latency_sum": Coalesce(Sum("latency_sum_ms"), 0),
        "successes": Coalesce(Sum("successes"), 0),
    }


def _mean_latency(row) -> float | None:
    return round(row["latency_sum"] / row["successes"], 1) if row["successes"] else None


STAFF_VIEW = "the staff dashboard over every organization"


def _rows_of(model, organization):
    """``model``'s rows of ``organization``, or of every organization for the staff view
    (``tenancy.ALL_ORGANIZATIONS``)."""
    if organization is ALL_ORGANIZATIONS:
        return model.objects.across_tenants(reason=STAFF_VIEW)
    return model.objects.for_org(organization)


def _providers_of(organization):
    if organization is ALL_ORGANIZATIONS:
        return Provider.objects.across_tenants(reason=STAFF_VIEW)
    return Provider.objects.visible_to(organization)


def dashboard_summary(*, organization, start=None, end=None) -> dict:
    """Everything the dashboard shows, from the daily rollups, in a fixed number of queries.

    The range is taken in whole UTC days: from the day of ``start`` to the day of ``end``.
    ``organization`` may be ``tenancy.ALL_ORGANIZATIONS``: the sums of every organization.
    """
    start, end = report_range(start, end)
    first_day, last_day = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    rows = rollups.daily_rows(organization, first_day, last_day)
    totals = rows.aggregate(**_rollup_aggregates())
    requests = totals["requests"]

    daily = [
        {"date": row["day"], **{k: row[k] for k in ("requests", "errors", "tokens", "cost")}}
        for row in rows.values("day").annotate(**_rollup_aggregates()).order_by("day")
    ]
    top_models = [
        {"model": row["model_pk"] or None, "served_model": row["served_model"], **_usage(row)}
        for row in rows.values("model_pk", "served_model")
        .annotate(**_rollup_aggregates())
        .order_by("-cost", "-requests", "served_model")[:TOP_N]
    ]
    key_rows = list(
        rows.exclude(client_key_pk=0)
        .values("client_key_pk")
        .annotate(**_rollup_aggregates())
        .order_by("-cost", "-requests", "client_key_pk")[:TOP_N]
    )
    keys = {
        key.pk: key
        for key in _rows_of(ClientKey, organization).filter(
            pk__in=[row["client_key_pk"] for row in key_rows]
        )
    }
    top_keys = [
        {
            "client_key": row["client_key_pk"],
            "name": getattr(keys.get(row["client_key_pk"]), "name", None),
            "prefix": getattr(keys.get(row["client_key_pk"]), "prefix", None),
            **_usage(row),
        }
        for row in key_rows
    ]

    health = {status: 0 for status in HealthStatus.values}
    for row in (
        _rows_of(ProviderCredential, organization).values("health_status").annotate(n=Count("id"))
    ):
        health[row["health_status"]] = row["n"]
    return {
        "start": start,
        "end": end,
        "totals": {
            "requests": requests,
            "successful_requests": requests - totals["errors"],
            "failed_requests": totals["errors"],
            "error_rate": _rate(totals["errors"], requests),
            # The callers' own failures (bad input, their limits) and the providers' are
            # different alarms: one is the callers' to fix, the other the operator's.
            "client_errors": totals["client_errors"],
            "provider_errors": totals["provider_errors"],
            "client_error_rate": _rate(totals["client_errors"], requests),
            "provider_error_rate": _rate(totals["provider_errors"], requests),
            "tokens": totals["tokens"],
            "cost": totals["cost"],
            "avg_latency_ms": _mean_latency(totals),
            "fallbacks_taken": totals["fallbacks"],
        },
        "daily": daily,
        "top_models": top_models,
        "top_client_keys": top_keys,
        "credential_health": health,
        "latency_by_provider": latency_by_provider(organization, first_day, last_day),
        "credentials": credential_overview(organization),
    }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _usage(row) -> dict:
    return {"requests": row["requests"], "tokens": row["tokens"], "cost": row["cost"]}


def latency_by_provider(organization, first_day, last_day) -> list[dict]:
    """Requests, error rate, fallbacks and p50/p95 latency per provider over whole days.

    Percentiles come from the latency buckets of successful requests and are reported as
    the upper bound of the bucket they fall in (see ``modelhub.rollups``).
    """
    groups = list(
        rollups.daily_rows(organization, first_day, last_day)
        .values("provider_pk")
        .annotate(**_rollup_aggregates())
        .order_by("-requests", "provider_pk")
    )
    slugs = dict(
        _providers_of(organization)
        .filter(pk__in=[g["provider_pk"] for g in groups])
        .values_list("pk", "slug")
    )
    buckets: dict[int, dict[int, int]] = {}
    for row in (
        rollups.latency_rows(organization, first_day, last_day)
        .values("provider_pk", "bucket")
        .annotate(n=Sum("count"))
        .order_by()
    ):
        buckets.setdefault(row["provider_pk"], {})[row["bucket"]] = row["n"]
    result = []
    for group in groups:
        counts = buckets.get(group["provider_pk"], {})
        result.append(
            {
                "provider": group["provider_pk"] or None,
                "provider_slug": slugs.get(group["provider_pk"]),
                "requests": group["requests"],
                "errors": group["errors"],
                "error_rate": _rate(group["errors"], group["requests"]),
                "provider_errors": group["provider_errors"],
                "provider_error_rate": _rate(group["provider_errors"], group["requests"]),
                "fallbacks": group["fallbacks"],
                "avg_latency_ms": _mean_latency(group),
                "p50_ms": rollups.percentile_from_buckets(counts, 50),
                "p95_ms": rollups.percentile_from_buckets(counts, 95),
            }
        )
    return result


def credential_overview(organization) -> list[dict]:
    """Every credential with its health, last error and quota usage in the current period."""
    rows = []
    now = timezone.now()
    for credential in (
        _rows_of(ProviderCredential, organization)
        .select_related("provider", "organization")
        .order_by("organization__slug", "provider__slug", "priority", "id")
    ):
        rows.append(
            {
                "id": credential.pk,
                "organization_slug": credential.organization.slug,
                "name": credential.name,
                "provider_slug": credential.provider.slug,
                "secret_hint": credential.secret_hint,
                "is_active": credential.is_active,
                "health_status": credential.health_status,
                "last_error": credential.visible_last_error,
                "consecutive_failures": credential.consecutive_failures,
                "last_failure_at": credential.last_failure_at,
                "cooldown_until": credential.cooldown_until
                if credential.cooldown_until and credential.cooldown_until > now
                else None,
                "quotas": [
                    {
                        "quota": state.name,
                        "limit": state.limit,
                        "used": state.used,
                        "percent_used": state.percent_used,
                        "resets_at": state.resets_at,
                    }
                    for state in quota_states(credential, now)
                ],
            }
        )
    return rows


# --- What an organization can call ----------------------------------------------------------
# One definition for the router (``modelhub.routing``: named models and ``auto``) and the
# gateway's model list: a provider is callable with an active credential of the
# organization; with none at all, when it needs no key or the server's environment key
# for it serves the organization. Credentials that exist but are all disabled close the
# provider: the organization turned it off, and no fallback key opens it again.


def environment_credentials_allowed(organization: Organization) -> bool:
    """Whether the provider keys of the server's environment may serve ``organization``.

    They always serve the default organization (``DEFAULT_ORGANIZATION_SLUG``, the one
    ``bootstrap`` creates for a zero-setup install); other organizations bring their own
    credentials unless the operator opens them to all (``GATEWAY_ALLOW_ENV_CREDENTIALS``).
    """
    return (
        settings.GATEWAY_ALLOW_ENV_CREDENTIALS
        or organization.slug == settings.DEFAULT_ORGANIZATION_SLUG
    )


def environment_key_source(provider: Provider, organization: Organization) -> bool:
    """Whether a global provider's key from the environment may serve ``organization``."""
    return bool(
        environment_credentials_allowed(organization)
        and provider.organization_id is None
        and provider.api_key_env_var
        and os.environ.get(provider.api_key_env_var)
    )


def credential_free_source(provider: Provider, organization: Organization) -> str | None:
    """How ``organization`` calls ``provider`` without a credential of its own: "none"
    (keyless endpoint), "environment" (the server's key), or None (it cannot)."""
    if not provider.requires_api_key:
        return "none"
    if environment_key_source(provider, organization):
        return "environment"
    return None


def callable_providers_q(organization: Organization, *, prefix: str = "") -> Q:
    """The providers ``organization`` can call, as a filter on providers (``prefix=""``)
    or on a relation to them (``prefix="provider__"``); the same rule, row by row, as
    ``credential_free_source`` and the credentials the router expands."""
    credentials = ProviderCredential.objects.for_org(organization)
    environment = []
    if environment_credentials_allowed(organization):  # else spare the query
        environment = [
            provider.pk
            for provider in Provider.objects.global_rows().exclude(api_key_env_var="")
            if environment_key_source(provider, organization)
        ]
    pk = f"{prefix}pk__in" if prefix else "pk__in"
    free = Q(**{f"{prefix}requires_api_key": False}) | Q(**{pk: environment})
    return Q(**{pk: credentials.filter(is_active=True).values("provider_id")}) | (
        ~Q(**{pk: credentials.values("provider_id")}) & free
    )


def stored_response_get(*, organization: Organization, response_id: str) -> StoredResponse | None:
    """One of ``organization``'s stored responses still within its retention, or None
    (another organization's id reads as missing)."""
    return (
        StoredResponse.objects.for_org(organization)
        .filter(response_id=response_id, created_at__gte=responses_retention_cutoff())
        .first()
    )


# --- Budgets ------------------------------------------------------------------------------


class LimitCountersUnavailable(Exception):
    """The Redis holding the gateway's counters did not answer."""


@functools.cache
def _counters_client(url: str):
    """One client (and connection pool) per Redis URL for the process, reused by every
    read of the counters; redis-py clients are thread-safe."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def limit_counter_values(keys: Sequence[str]) -> dict[str, int]:
    """Current values of the gateway's limit counters: in Redis when the gateway keeps them
    there (``GATEWAY_LIMIT_BACKEND``), else in ``LimitCounter`` rows. Missing is zero."""
    url = counters_redis_url()
    if url:
        import redis

        try:
            values = _counters_client(url).mget(list(keys)) if keys else []
        except redis.RedisError as exc:
            raise LimitCountersUnavailable(f"The budget counters could not be read: {exc}") from exc
        return {key: int(value or 0) for key, value in zip(keys, values, strict=True)}
    found = dict(LimitCounter.objects.filter(key__in=keys).values_list("key", "value"))
    return {key: found.get(key, 0) for key in keys}


def _budget_statuses(
    subject: str, owners: Sequence[Organization] | Sequence[ClientKey], now=None
) -> dict[int, BudgetStatus]:
    """The budget status of each owner (organization or key), in one read of the
    counters. Owners without a budget read nothing and show no spend."""
    now = now or timezone.now()
    bounds = {owner.pk: budget_period_bounds(owner.budget_period or None, now) for owner in owners}
    keys = {
        owner.pk: spend_counter(subject, owner.pk, owner.budget_period or None, bounds[owner.pk][0])
        for owner in owners
        if owner.budget_amount is not None
    }
    values = limit_counter_values(list(keys.values()))
    statuses = {}
    for owner in owners:
        start, end = bounds[owner.pk]
        amount = owner.budget_amount
        spent = from_picodollars(values[keys[owner.pk]]) if owner.pk in keys else Decimal(0)
        statuses[owner.pk] = BudgetStatus(
            amount=amount,
            period=owner.budget_period or None,
            spent=spent,
            remaining=None if amount is None else max(amount - spent, Decimal(0)),
            period_start=start,
            period_end=None if end == NEVER else end,
        )
    return statuses


def client_key_budget_statuses(
    keys: Iterable[ClientKey], now: datetime | None = None
) -> dict[int, BudgetStatus]:
    """:class:`BudgetStatus` of each key, by key id, in one read of the counters."""
    return _budget_statuses(CLIENT_KEY, list(keys), now)


def budgeted_client_keys(organization, now: datetime | None = None):
    """The organization's usable keys that have a budget (revoked and expired ones spend
    nothing more); every organization's for ``tenancy.ALL_ORGANIZATIONS``."""
    return (
        _rows_of(ClientKey, organization)
        .filter(budget_amount__isnull=False, revoked_at__isnull=True)
        .exclude(expires_at__lte=now or timezone.now())
        .select_related("organization")
        .order_by("organization__slug", "name", "id")
    )


def client_key_budget_overview(organization, limit: int = TOP_N * 2) -> list[dict]:
    """The budgeted keys closest to their budget first: key, organization and status."""
    keys = list(budgeted_client_keys(organization))
    statuses = client_key_budget_statuses(keys)
    rows = [
        {"key": key, "organization_slug": key.organization.slug, "status": statuses[key.pk]}
        for key in keys
    ]
    rows.sort(key=lambda row: (-row["status"].percent_used, row["key"].name))
    return rows[:limit]


# --- Gauges of the gateway's /metrics -------------------------------------------------------

METRICS_SCRAPE = "the gauges of /metrics cover every organization"

# Where a budget-remaining gauge comes from: the organization's own budget, or the sum
# over its client keys that have one.
BUDGET_SOURCE_ORGANIZATION = "organization"
BUDGET_SOURCE_CLIENT_KEYS = "client_keys"


@dataclass(frozen=True)
class BudgetGauge:
    organization_slug: str
    source: str  # BUDGET_SOURCE_*
    budget: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class SyncGauge:
    provider_slug: str
    is_global: bool
    last_success: datetime


@dataclass(frozen=True)
class TelemetrySnapshot:
    """What the gauges of ``/metrics`` show, read in a handful of queries."""

    budgets: list[BudgetGauge]
    credential_health: dict[tuple[str, str], int]  # (organization slug, health) -> count
    last_syncs: list[SyncGauge]


def _organization_budget_gauges() -> list[BudgetGauge]:
    """The organizations' own budgets, of those that have one."""
    organizations = list(Organization.objects.filter(budget_amount__isnull=False).order_by("slug"))
    statuses = organization_budget_statuses(organizations)
    return [
        BudgetGauge(
            organization.slug,
            BUDGET_SOURCE_ORGANIZATION,
            Decimal(statuses[organization.pk].amount or 0),
            Decimal(statuses[organization.pk].remaining or 0),
        )
        for organization in organizations
    ]


def telemetry_snapshot(now: datetime | None = None) -> TelemetrySnapshot:
    """Budget remaining per organization, credential health counts per organization and
    the last successful sync per provider, for every organization at once."""
    now = now or timezone.now()
    keys = list(budgeted_client_keys(ALL_ORGANIZATIONS, now))
    statuses = client_key_budget_statuses(keys, now)
    sums: dict[str, list[Decimal]] = {}
    for key in keys:
        status = statuses[key.pk]
        totals = sums.setdefault(key.organization.slug, [Decimal(0), Decimal(0)])
        totals[0] += status.amount or 0
        totals[1] += status.remaining or 0
    budgets = _organization_budget_gauges() + [
        BudgetGauge(slug, BUDGET_SOURCE_CLIENT_KEYS, budget, remaining)
        for slug, (budget, remaining) in sorted(sums.items())
    ]

    health: dict[tuple[str, str], int] = {}
    for row in (
        ProviderCredential.objects.across_tenants(reason=METRICS_SCRAPE)
        .values("organization__slug", "health_status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        for health_status in HealthStatus.values:  # every status of an organization, zeros too
            health.setdefault((row["organization__slug"], health_status), 0)
        health[(row["organization__slug"], row["health_status"])] = row["n"]

    syncs = [
        SyncGauge(row["provider_slug"], row["provider__organization_id"] is None, row["last"])
        for row in SyncRun.objects.filter(
            status__in=[SyncStatus.SUCCESS, SyncStatus.PARTIAL],
            dry_run=False,
            finished_at__isnull=False,
        )
        .values("provider_slug", "provider__organization_id")
        .annotate(last=Max("finished_at"))
        .order_by("provider_slug")
    ]
    return TelemetrySnapshot(budgets, health, syncs)


def organization_budget_statuses(
    organizations: Sequence[Organization], now=None
) -> dict[int, BudgetStatus]:
    """:func:`organization_budget_status` of several organizations, by id, in one read."""
    return _budget_statuses(ORGANIZATION, organizations, now)


def organization_budget_status(organization: Organization, now=None) -> BudgetStatus:
    """What the organization's keys together spent in the current budget period and what
    is left (``remaining`` is None without a budget), read from the live counter: Redis
    when the gateway keeps its counters there, ``LimitCounter`` rows otherwise. Spend is
    what finished requests cost; requests still running are not in it."""
    return _budget_statuses(ORGANIZATION, [organization], now)[organization.pk]


def client_key_budget_status(client_key: ClientKey, now=None) -> BudgetStatus:
    """The same for one client key and its own budget."""
    return _budget_statuses(CLIENT_KEY, [client_key], now)[client_key.pk]


# --- Webhooks -----------------------------------------------------------------------------

# The budget subject each budget event is about.
BUDGET_EVENTS = {
    WebhookEvent.ORGANIZATION_BUDGET: ORGANIZATION,
    WebhookEvent.CLIENT_KEY_BUDGET: CLIENT_KEY,
}


def webhook_budget_thresholds(organization: Organization) -> dict[str, tuple[int, ...]]:
    """The percentages of a budget, by subject, whose crossing one of the organization's
    active webhooks wants to hear of: what the gateway compares spend against when it
    settles a request, so that it needs no query per request."""
    found: dict[str, set[int]] = {}
    rows = Webhook.objects.for_org(organization).filter(is_active=True)
    for events, thresholds in rows.values_list("events", "thresholds"):
        for event in events or ():
            if event in BUDGET_EVENTS:
                found.setdefault(BUDGET_EVENTS[event], set()).update(thresholds or ())
    return {subject: tuple(sorted(values)) for subject, values in found.items()}


def webhooks_for_event(organization: Organization, event: str) -> list[Webhook]:
    """The organization's active webhooks subscribed to ``event``."""
    return [
        webhook
        for webhook in Webhook.objects.for_org(organization).filter(is_active=True)
        if event in (webhook.events or ())
    ]
