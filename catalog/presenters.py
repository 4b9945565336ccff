"""OpenRouter-shaped dictionaries built from catalog rows.

Prices are strings in USD per token, written as OpenRouter writes them: the plain decimal
without exponent or trailing zeros (``Decimal("0.000002500000000000")`` -> ``"0.0000025"``,
zero -> ``"0"``, the variable-price sentinel -> ``"-1"``). ``prompt`` and ``completion`` are
always present and ``null`` when the provider publishes no price (unknown is not free);
every other price key is left out when unknown, as OpenRouter leaves out prices that do not
apply.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from modelhub.models import Model, Provider

# (OpenRouter key, Model column) in the order OpenRouter writes them.
PRICE_FIELDS = (
    ("prompt", "pricing_prompt"),
    ("completion", "pricing_completion"),
    ("image", "pricing_image"),
    ("request", "pricing_request"),
    ("web_search", "pricing_web_search"),
    ("internal_reasoning", "pricing_internal_reasoning"),
    ("input_cache_read", "pricing_cache_read"),
    ("input_cache_write", "pricing_cache_write"),
)
ALWAYS_PRESENT_PRICES = frozenset({"prompt", "completion"})


def price_string(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def present_pricing(model: Model) -> dict[str, str | None]:
    pricing: dict[str, str | None] = {}
    for key, column in PRICE_FIELDS:
        text = price_string(getattr(model, column))
        if text is not None or key in ALWAYS_PRESENT_PRICES:
            pricing[key] = text
    return pricing


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def present_model(model: Model) -> dict:
    """One model in OpenRouter's ``/api/v1/models`` shape, plus the provider's slug.

    ``id`` is the name to send to that provider (``provider_model_id``); the same weights
    sold by several providers therefore appear once per provider, told apart by
    ``provider_slug``.
    """
    return {
        "id": model.provider_model_id,
        "name": model.model_name,
        "created": _unix(model.upstream_created_at or model.created_at),
        "description": model.description,
        "architecture": {
            "modality": model.modality or None,
            "input_modalities": list(model.input_modalities or []),
            "output_modalities": list(model.output_modalities or []),
            "tokenizer": model.tokenizer or None,
            "instruct_type": model.instruct_type or None,
        },
        "top_provider": {
            "is_moderated": model.is_moderated,
            "context_length": model.context_length,
            "max_completion_tokens": model.max_completion_tokens,
        },
        "pricing": present_pricing(model),
        "canonical_slug": model.canonical_slug or None,
        "context_length": model.context_length,
        "hugging_face_id": model.hugging_face_id or None,
        "per_request_limits": model.per_request_limits,
        "supported_parameters": list(model.supported_parameters or []),
        "provider_slug": model.provider.slug,
    }


def present_provider(provider: Provider) -> dict:
    """One provider in OpenRouter's ``/api/v1/providers`` shape plus catalog counts.

    Expects ``model_count`` annotated by the selector. Blank URLs are ``null``, as
    OpenRouter writes them.
    """
    return {
        "name": provider.name,
        "slug": provider.slug,
        "privacy_policy_url": provider.privacy_policy_url or None,
        "terms_of_service_url": provider.terms_of_service_url or None,
        "status_page_url": provider.status_page_url or None,
        "may_log_prompts": provider.may_log_prompts,
        "may_train_on_data": provider.may_train_on_data,
        "moderated_by_openrouter": provider.moderated_by_openrouter,
        "needs_moderated": provider.needs_moderated,
        "logo_url": provider.logo_url or None,
        "site_url": provider.site_url or None,
        "model_count": getattr(provider, "model_count", None),
        "last_synced_at": provider.last_synced_at.isoformat() if provider.last_synced_at else None,
    }


def present_endpoint(model: Model) -> dict:
    """One stored offer of a model, in the shape of OpenRouter's per-model endpoints.

    Fields the catalog does not know (quantization, live status and uptime) are ``null``;
    ``max_prompt_tokens`` comes from ``per_request_limits`` when the provider states it.
    """
    limits = model.per_request_limits if isinstance(model.per_request_limits, dict) else {}
    max_prompt = limits.get("prompt_tokens")
    if isinstance(max_prompt, str) and max_prompt.isdigit():
        max_prompt = int(max_prompt)
    return {
        "provider_name": model.provider.name,
        "provider_slug": model.provider.slug,
        "gateway": model.provider.slug,
        "model_id": model.provider_model_id,
        "context_length": model.context_length,
        "pricing": present_pricing(model),
        "max_completion_tokens": model.max_completion_tokens,
        "max_prompt_tokens": max_prompt if type(max_prompt) is int else None,
        "quantization": None,
        "supported_parameters": list(model.supported_parameters or []),
        "status": None,
        "uptime_last_30m": None,
    }
