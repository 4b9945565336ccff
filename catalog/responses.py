"""The JSON bodies of the public catalog endpoints, cached until the catalog changes.

Every cache key holds ``catalog_version()``, so a sync that bumps it makes its result visible
at once. What is cached is the database part of an answer (provider pages 1 hour, model
pages and model details 30 minutes); Hugging Face metrics and live OpenRouter endpoints are
laid over it on each request from their own, separately cached stores.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from catalog import huggingface, openrouter, selectors
from catalog.parameters import ModelListParams, ProviderListParams
from catalog.presenters import present_endpoint, present_model, present_provider
from modelhub.cache import catalog_version

MISSING = "missing"


class ModelNotFound(LookupError):
    """No public model answers to the requested provider/model (and gateway)."""


class UnknownGateway(ValueError):
    """``gateway`` names neither a well-known gateway nor a synced provider."""

    def __init__(self, gateway: str, valid: list[str]):
        self.valid = valid
        super().__init__(f"Unknown gateway '{gateway}'. Valid gateways: {', '.join(valid)}.")


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()
    return f"catalog:v{catalog_version()}:{kind}:{digest}"


def _now() -> str:
    return timezone.now().isoformat()


def providers_body(params: ProviderListParams) -> dict:
    key = _key("providers", params.cache_key_part())
    cached = cache.get(key)
    if cached is None:
        total, page = selectors.provider_page(params)
        cached = {"total": total, "data": [present_provider(p) for p in page]}
        cache.set(key, cached, settings.CATALOG_PROVIDERS_CACHE_SECONDS)
    return {
        "data": cached["data"],
        "total": cached["total"],
        "returned": len(cached["data"]),
        "offset": params.page.offset,
        "limit": params.page.limit,
        "timestamp": _now(),
    }


def _attach_metrics(models: list[dict]) -> None:
    metrics = huggingface.metrics_for(
        (m["hugging_face_id"] for m in models if m["hugging_face_id"]),
        live_budget=settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST,
    )
    for model in models:
        model["huggingface_metrics"] = metrics.get(model["hugging_face_id"])


def models_body(params: ModelListParams, *, include_huggingface: bool) -> dict:
    key = _key("models", params.cache_key_part())
    cached = cache.get(key)
    if cached is None:
        total, page = selectors.model_page(params)
        cached = {"total": total, "data": [present_model(m) for m in page]}
        cache.set(key, cached, settings.CATALOG_MODELS_CACHE_SECONDS)
    data = cached["data"]
    if include_huggingface:
        _attach_metrics(data)
    return {
        "data": data,
        "total": cached["total"],
        "returned": len(data),
        "offset": params.page.offset,
        "limit": params.page.limit,
        "include_huggingface": include_huggingface,
        "timestamp": _now(),
    }


def _price(value) -> Decimal | None:
    try:
        price = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return price if price.is_finite() and price >= 0 else None


def cheapest_first(endpoints: list[dict]) -> list[dict]:
    """Known prices before unknown and variable ones; prompt, then completion, then name."""

    def order(endpoint: dict):
        pricing = endpoint.get("pricing") or {}
        prompt = _price(pricing.get("prompt"))
        completion = _price(pricing.get("completion"))
        return (
            prompt is None,
            prompt or 0,
            completion is None,
            completion or 0,
            (endpoint.get("provider_name") or "").lower(),
        )

    return sorted(endpoints, key=order)


def _stored_detail(provider_name: str, model_name: str, gateway: str | None) -> dict:
    model = selectors.find_model(provider_name, model_name, gateway)
    if model is None:
        return {MISSING: True}
    index = selectors.provider_index()
    author = index.get(provider_name.lower())
    data = present_model(model)
    data.update(
        provider_slug=provider_name.lower(),
        provider_site_url=(author.site_url if author else "") or model.provider.site_url or None,
        model_logo_url=(author.logo_url if author else "") or model.provider.logo_url or None,
        source_gateway=model.provider.slug,
    )
    offers = selectors.offers_of(model)
    openrouter_ids = [o.provider_model_id for o in offers if o.provider.slug == "openrouter"]
    return {
        "data": data,
        "endpoints": [present_endpoint(o) for o in offers],
        "openrouter_id": openrouter_ids[0] if openrouter_ids else None,
    }


def model_detail_body(
    provider_name: str, model_name: str, *, gateway: str | None, include_huggingface: bool
) -> dict:
    """The detail of one model with its offers across providers, cheapest first.

    With live OpenRouter data, its per-host endpoints replace the single stored OpenRouter
    offer (same gateway, but one entry per upstream host with status and uptime).
    """
    if gateway is not None and gateway not in selectors.valid_gateways():
        raise UnknownGateway(gateway, selectors.valid_gateways())
    key = _key("model", provider_name, model_name, gateway or "")
    stored = cache.get(key)
    if stored is None:
        stored = _stored_detail(provider_name, model_name, gateway)
        cache.set(key, stored, settings.CATALOG_MODELS_CACHE_SECONDS)
    if stored.get(MISSING):
        where = f" on gateway '{gateway}'" if gateway else ""
        raise ModelNotFound(f"Model '{provider_name}/{model_name}' not found{where}.")

    data = stored["data"]
    endpoints = stored["endpoints"]
    if stored["openrouter_id"]:
        live = openrouter.live_endpoints(stored["openrouter_id"])
        if live is not None:
            endpoints = [e for e in endpoints if e["gateway"] != "openrouter"] + live
    data["endpoints"] = cheapest_first(endpoints)
    data["huggingface_metrics"] = None
    if include_huggingface and data["hugging_face_id"]:
        metrics = huggingface.metrics_for(
            [data["hugging_face_id"]], live_budget=settings.HUGGINGFACE_LIVE_FETCHES_PER_REQUEST
        )
        data["huggingface_metrics"] = metrics.get(data["hugging_face_id"])
    return {
        "data": data,
        "provider": provider_name,
        "model": model_name,
        "gateway": gateway or data["source_gateway"],
        "include_huggingface": include_huggingface,
        "timestamp": _now(),
    }
