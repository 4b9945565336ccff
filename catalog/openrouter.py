"""Live per-model endpoints from OpenRouter (``/api/v1/models/{author}/{slug}/endpoints``).

Asked only when ``OPENROUTER_API_KEY`` is set, with a short timeout; answers (and failures,
for a shorter while) are cached so a model page costs at most one call per few minutes.
Any failure means "no live data": the stored catalog answers alone.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache

from catalog import http_session

logger = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 60
ENDPOINT_FIELDS = (
    "context_length",
    "max_completion_tokens",
    "max_prompt_tokens",
    "quantization",
    "status",
    "uptime_last_30m",
)


def endpoint_model_id(provider_model_id: str) -> str:
    """OpenRouter's endpoint list is per model, not per variant (``:free``, ``:batch``)."""
    return provider_model_id.split(":", 1)[0]


def _present(endpoint: dict) -> dict | None:
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("provider_name"), str):
        return None
    pricing = endpoint.get("pricing") if isinstance(endpoint.get("pricing"), dict) else {}
    supported = endpoint.get("supported_parameters")
    presented = {
        "provider_name": endpoint["provider_name"],
        "provider_slug": None,
        "gateway": "openrouter",
        "tag": endpoint.get("tag"),
        # Only the per-token string prices; ``discount`` is a number and not a price.
        "pricing": {k: v for k, v in pricing.items() if isinstance(v, str)},
        "supported_parameters": supported if isinstance(supported, list) else [],
    }
    for field in ENDPOINT_FIELDS:
        presented[field] = endpoint.get(field)
    return presented


def live_endpoints(provider_model_id: str) -> list[dict] | None:
    """The hosts OpenRouter routes this model to, or None without a key or on failure."""
    if not settings.OPENROUTER_API_KEY:
        return None
    model_id = endpoint_model_id(provider_model_id)
    if "/" not in model_id:
        return None
    digest = hashlib.sha1(model_id.encode(), usedforsecurity=False).hexdigest()
    key = f"catalog:openrouter-endpoints:{digest}"
    cached = cache.get(key)
    if cached is not None:
        return cached.get("endpoints")
    endpoints = _fetch(model_id)
    timeout = (
        settings.OPENROUTER_ENDPOINTS_CACHE_SECONDS
        if endpoints is not None
        else FAILURE_CACHE_SECONDS
    )
    cache.set(key, {"endpoints": endpoints}, timeout)
    return endpoints


def _fetch(model_id: str) -> list[dict] | None:
    url = f"{settings.OPENROUTER_API_URL.rstrip('/')}/models/{quote(model_id, safe='/')}/endpoints"
    import requests  # imported when used: see sync/fetch.py

    try:
        response = http_session.shared().get(
            url,
            headers={"Authorization": f"Bearer {settings.OPENROUTER_API_KEY}"},
            timeout=settings.OPENROUTER_ENDPOINTS_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("OpenRouter endpoints unavailable for %s: %s", model_id, exc)
        return None
    data = body.get("data") if isinstance(body, dict) else None
    endpoints = data.get("endpoints") if isinstance(data, dict) else None
    if not isinstance(endpoints, list):
        return None
    return [e for e in map(_present, endpoints) if e is not None]
