"""Reads of the gateway: the models a client key may use, in OpenAI's list shape."""

from __future__ import annotations

from modelhub.models import Model, Organization
from modelhub.routing import active_rules
from modelhub.selectors import callable_providers_q


def model_list(organization: Organization, key) -> list[dict]:
    """Every model ``key`` may use, plus the organization's routing aliases."""
    models = (
        Model.objects.visible_to(organization)
        .active()
        .filter(callable_providers_q(organization, prefix="provider__"))
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
