"""Provider policy columns (privacy, terms, status URLs; data and moderation flags).

OpenRouter's provider directory is the one source that lists them for many providers;
its entries are matched to the registry by ``ProviderSpec.openrouter_slugs``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction

from modelhub.cache import bump_catalog_version
from modelhub.invalidation import publish_tenant_change
from modelhub.models import Provider
from sync.fetch import extract_items, fetch_page, request_headers
from sync.registry import REGISTRY, all_specs

if TYPE_CHECKING:
    import requests

logger = logging.getLogger("sync")

OPENROUTER_PROVIDERS_URL = "https://openrouter.ai/api/v1/providers"
POLICY_URL_FIELDS = ("privacy_policy_url", "terms_of_service_url", "status_page_url")


def provider_policies(payload: Any) -> dict[str, dict[str, Any]]:
    """OpenRouter's /api/v1/providers body as Provider column values per OpenRouter slug."""
    policies: dict[str, dict[str, Any]] = {}
    for entry in extract_items(REGISTRY["openrouter"], payload):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("slug"), str):
            continue
        values: dict[str, Any] = {}
        for field in POLICY_URL_FIELDS:
            url = entry.get(field)
            values[field] = (
                url if isinstance(url, str) and url.startswith("http") and len(url) <= 500 else ""
            )
        data_policy = entry.get("data_policy")
        if isinstance(data_policy, Mapping):
            for key, field in (
                ("training", "may_train_on_data"),
                ("retainsPrompts", "may_log_prompts"),
                ("retains_prompts", "may_log_prompts"),
            ):
                if isinstance(data_policy.get(key), bool):
                    values[field] = data_policy[key]
        for key in ("moderated_by_openrouter", "is_moderated"):
            if isinstance(entry.get(key), bool):
                values["moderated_by_openrouter"] = entry[key]
        if isinstance(entry.get("needs_moderated"), bool):
            values["needs_moderated"] = entry["needs_moderated"]
        policies[entry["slug"]] = values
    return policies


def sync_provider_policies(*, session: requests.Session | None = None) -> int:
    """Fill the policy columns of the global Provider rows; returns how many rows changed."""
    import requests  # imported when used: see sync/fetch.py

    spec = REGISTRY["openrouter"]
    api_key = spec.api_key()
    if not api_key:
        logger.info("sync policies: skipped: %s is not set", spec.env_var)
        return 0
    with requests.Session() if session is None else session as http:
        payload = fetch_page(
            http, OPENROUTER_PROVIDERS_URL, headers=request_headers(spec, api_key), secret=api_key
        )
    policies = provider_policies(payload)
    by_slug = {}
    for provider_spec in all_specs():
        for slug in provider_spec.openrouter_slugs:
            if slug in policies:
                by_slug[provider_spec.slug] = policies[slug]
                break
    changed = []
    fields: set[str] = set()
    for provider in Provider.objects.global_rows().filter(slug__in=by_slug):
        values = by_slug[provider.slug]
        diff = {k: v for k, v in values.items() if getattr(provider, k) != v}
        if diff:
            for key, value in diff.items():
                setattr(provider, key, value)
            fields |= diff.keys()
            changed.append(provider)
    if changed:
        Provider.objects.bulk_update(changed, sorted(fields | {"updated_at"}))
        transaction.on_commit(bump_catalog_version)
        publish_tenant_change(None)
    return len(changed)
