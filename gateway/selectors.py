"""Reads of the gateway: the models a client key may use, in OpenAI's list shape."""

from __future__ import annotations

import os

from django.db.models import Q

from modelhub.models import Model, Organization, Provider, ProviderCredential
from modelhub.routing import active_rules, environment_credentials_allowed


def _usable_providers_q(organization: Organization) -> Q:
    """Providers the organization can call: with an active credential, keyless ones, and
    global ones whose environment key operators allow."""
    with_credential = ProviderCredential.objects.for_org(organization).filter(is_active=True)
    query = Q(provider__in=with_credential.values("provider_id")) | Q(
        provider__requires_api_key=False
    )
    if environment_credentials_allowed(organization):
        env_providers = [
            pk
            for pk, env_var in Provider.objects.global_rows()
            .exclude(api_key_env_var="")
            .values_list("pk", "api_key_env_var")
            if os.environ.get(env_var)
        ]
        query |= Q(provider__in=env_providers)
    return query


def model_list(organization: Organization, key) -> list[dict]:
    """Every model ``key`` may use, plus the organization's routing aliases."""
    models = (
        Model.objects.visible_to(organization)
        .active()
        .filter(_usable_providers_q(organization))
        .select_related("provider")
        .order_by("provider__slug", "provider_model_id")
    )
    entries = []
    seen = set()
    for model in models:
        if not key.allows_model(model) or model.catalog_id in seen:
            continue
        seen.add(model.catalog_id)
        created = model.upstream_created_at or model.created_at
        entries.append(
            {
                "id": model.catalog_id,
                "object": "model",
                "created": int(created.timestamp()),
                "owned_by": model.provider.slug,
            }
        )
    for rule in active_rules(organization):
        alias = rule.match_model
        if any(char in alias for char in "*?[") or alias in seen or not key.allows(alias):
            continue
        seen.add(alias)
        entries.append(
            {
                "id": alias,
                "object": "model",
                "created": int(rule.created_at.timestamp()),
                "owned_by": organization.slug,
            }
        )
    return entries
