"""Row builders for every test package. Writes with rules behind them (credentials,
client keys, routing rules, metrics) go through modelhub's services, as the API's do;
catalog rows are created directly, as the sync leaves them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from modelhub import services
from modelhub.models import (
    AuditLogEntry,
    ClientKey,
    Membership,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    RoutingRule,
    RoutingTarget,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from tests.support.recorded import openrouter_records

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}"


def make_provider(organization: Organization | None = None, slug: str | None = None, **fields):
    """A global provider (``organization`` None) or one private to ``organization``."""
    slug = slug or unique("prov")
    fields.setdefault("name", slug.replace("-", " ").title())
    return Provider.objects.create(organization=organization, slug=slug, **fields)


def make_model(provider: Provider, provider_model_id: str | None = None, **fields) -> Model:
    """A priced text model with an 8k context unless ``fields`` say otherwise."""
    provider_model_id = provider_model_id or unique("model")
    fields.setdefault("model_name", provider_model_id)
    fields.setdefault("pricing_prompt", Decimal("0.000001"))
    fields.setdefault("pricing_completion", Decimal("0.000002"))
    fields.setdefault("context_length", 8192)
    fields.setdefault("modality", "text->text")
    fields.setdefault("input_modalities", ["text"])
    fields.setdefault("output_modalities", ["text"])
    return Model.objects.create(provider=provider, provider_model_id=provider_model_id, **fields)


def make_credential(
    organization: Organization,
    provider: Provider,
    name: str | None = None,
    secret: str = "sk-test-0123456789abcd",
    **fields,
) -> ProviderCredential:
    return services.provider_credential_create(
        organization=organization,
        provider=provider,
        secret=secret,
        name=name or unique("cred"),
        **fields,
    )


def make_client_key(organization: Organization, name: str | None = None, **fields) -> ClientKey:
    issued = services.client_key_create(
        organization=organization, name=name or unique("key"), **fields
    )
    return issued.client_key


def make_rule(
    organization: Organization,
    targets: list,
    name: str | None = None,
    match_model: str = "*",
    **fields,
) -> RoutingRule:
    """``targets``: models, or ``(model, credential, weight)`` tuples."""
    rows = []
    for target in targets:
        if isinstance(target, Model):
            target = (target, None, 1)
        model, credential, weight = target
        rows.append({"model": model, "credential": credential, "weight": weight})
    return services.routing_rule_save(
        organization=organization,
        name=name or unique("rule"),
        match_model=match_model,
        targets=rows,
        **fields,
    )


def make_metric(organization: Organization, **fields) -> ModelMetric:
    fields.setdefault("requested_model", "gpt-x")
    return services.metric_create(organization=organization, **fields)


# OpenRouter pricing key -> Model column.
PRICE_COLUMNS = {
    "prompt": "pricing_prompt",
    "completion": "pricing_completion",
    "image": "pricing_image",
    "request": "pricing_request",
    "web_search": "pricing_web_search",
    "internal_reasoning": "pricing_internal_reasoning",
    "input_cache_read": "pricing_cache_read",
    "input_cache_write": "pricing_cache_write",
}


def model_from_openrouter(provider: Provider, record: dict) -> Model:
    """A row holding what the sync keeps of one OpenRouter ``/api/v1/models`` record."""
    architecture = record["architecture"]
    top = record["top_provider"]
    prices = {
        column: Decimal(record["pricing"][key])
        for key, column in PRICE_COLUMNS.items()
        if isinstance(record["pricing"].get(key), str)
    }
    # The record's own prices only: no builder default stands in for a missing one.
    prices = {column: None for column in PRICE_COLUMNS.values()} | prices
    return make_model(
        provider,
        record["id"],
        model_name=record["name"],
        canonical_slug=record.get("canonical_slug") or "",
        hugging_face_id=record.get("hugging_face_id") or "",
        description=record.get("description") or "",
        context_length=record.get("context_length"),
        max_completion_tokens=top.get("max_completion_tokens"),
        is_moderated=top.get("is_moderated", False),
        modality=architecture["modality"],
        input_modalities=architecture["input_modalities"],
        output_modalities=architecture["output_modalities"],
        tokenizer=architecture.get("tokenizer") or "",
        instruct_type=architecture.get("instruct_type") or "",
        supported_parameters=record.get("supported_parameters") or [],
        per_request_limits=record.get("per_request_limits"),
        upstream_created_at=datetime.fromtimestamp(record["created"], tz=UTC),
        author=record["id"].split("/", 1)[0].lstrip("~"),
        raw=record,
        **prices,
    )


def load_openrouter(provider: Provider | None = None) -> tuple[Provider, list[Model]]:
    """The recorded OpenRouter catalog as rows of an ``openrouter`` provider."""
    provider = provider or make_provider(
        slug="openrouter", name="OpenRouter", site_url="https://openrouter.ai"
    )
    return provider, [model_from_openrouter(provider, r) for r in openrouter_records()]


SNAPSHOT_MODELS = [
    Organization,
    Webhook,
    WebhookDelivery,
    Membership,
    Provider,
    Model,
    ProviderCredential,
    ClientKey,
    RoutingRule,
    RoutingTarget,
    ModelMetric,
    # A denied or refused call leaves no audit entry either.
    AuditLogEntry,
]


def make_webhook(
    organization: Organization, url: str = "https://hooks.example.com/modelhub", **fields
) -> Webhook:
    return services.webhook_create(organization=organization, url=url, **fields).webhook


def make_delivery(organization: Organization, webhook: Webhook | None = None) -> WebhookDelivery:
    """A recorded (not yet delivered) budget event of ``webhook`` (a new one by default)."""
    webhook = webhook or make_webhook(organization)
    return WebhookDelivery.objects.create(
        organization=organization,
        webhook=webhook,
        event=WebhookEvent.ORGANIZATION_BUDGET,
        subject_id=organization.pk,
        threshold=50,
        period_start=timezone.now(),
        payload={"event": WebhookEvent.ORGANIZATION_BUDGET, "threshold": 50},
    )


def db_state() -> dict:
    """Every column of every row of the modelhub tables, to prove a denied call wrote nothing."""
    return {
        model.__name__: list(model.objects.order_by("pk").values()) for model in SNAPSHOT_MODELS
    }


def rollup_snapshot() -> tuple[list, list]:
    """Every daily rollup row, sorted: compare what the writer left with ``rebuild()``."""
    from modelhub.models import MetricDaily, MetricDailyLatency

    usage = sorted(
        MetricDaily.objects.values_list(
            "organization_id",
            "day",
            "provider_pk",
            "model_pk",
            "client_key_pk",
            "served_model",
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cost",
            "latency_sum_ms",
            "successes",
            "fallbacks",
            "client_errors",
            "provider_errors",
        )
    )
    latency = sorted(
        MetricDailyLatency.objects.values_list(
            "organization_id", "day", "provider_pk", "bucket", "count"
        )
    )
    return usage, latency
