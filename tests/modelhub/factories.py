"""Row builders for the modelhub tests; writes with rules behind them go through services."""

from __future__ import annotations

import itertools
from decimal import Decimal

from modelhub import services
from modelhub.models import (
    ClientKey,
    Membership,
    Model,
    ModelMetric,
    Organization,
    Provider,
    ProviderCredential,
    RoutingRule,
    RoutingTarget,
)

_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_seq)}"


def make_provider(organization: Organization | None = None, slug: str | None = None, **fields):
    slug = slug or unique("prov")
    fields.setdefault("name", slug.title())
    return Provider.objects.create(organization=organization, slug=slug, **fields)


def make_model(provider: Provider, provider_model_id: str | None = None, **fields) -> Model:
    provider_model_id = provider_model_id or unique("model")
    fields.setdefault("model_name", provider_model_id)
    fields.setdefault("pricing_prompt", Decimal("0.000001"))
    fields.setdefault("pricing_completion", Decimal("0.000002"))
    fields.setdefault("context_length", 8192)
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


SNAPSHOT_MODELS = [
    Organization,
    Membership,
    Provider,
    Model,
    ProviderCredential,
    ClientKey,
    RoutingRule,
    RoutingTarget,
    ModelMetric,
]


def db_state() -> dict:
    """Every column of every row of the modelhub tables, to prove a denied call wrote nothing."""
    return {
        model.__name__: list(model.objects.order_by("pk").values()) for model in SNAPSHOT_MODELS
    }
