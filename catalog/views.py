"""Public, read-only catalog endpoints in OpenRouter's shapes, and their cache admin.

Plain Django views: no authentication, no session, no content negotiation, so a cached
answer costs little more than a cache read. Errors are ``{"detail": ...}``: 400 for a bad
parameter or gateway, 404 for an unknown model, 503 when the database is unreachable.
"""

from __future__ import annotations

import functools
import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from catalog import huggingface, responses, services
from catalog.parameters import (
    InvalidParameter,
    ModelListParams,
    ProviderListParams,
    checked_text,
    parse_bool,
    parse_text,
)
from modelhub.admin_api import require_admin_api_key

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "The catalog database is unavailable; try again shortly."


def catalog_endpoint(view):
    """Map the catalog's expected failures to ``{"detail": ...}`` answers."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except InvalidParameter as exc:
            return JsonResponse({"detail": str(exc)}, status=400)
        except responses.UnknownGateway as exc:
            return JsonResponse({"detail": str(exc), "valid_gateways": exc.valid}, status=400)
        except responses.ModelNotFound as exc:
            return JsonResponse({"detail": str(exc)}, status=404)
        except (OperationalError, InterfaceError):
            logger.exception("Catalog database unavailable")
            return JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)

    return wrapped


@require_GET
@catalog_endpoint
def provider_list(request):
    """GET /catalog/providers (alias /catalog/provider): providers in OpenRouter's shape.

    Query: ``moderated_only`` (bool), ``limit`` (1-1000, default all), ``offset``.
    Each provider also carries ``model_count`` (active models) and ``last_synced_at``.
    """
    params = ProviderListParams.from_query(request.GET)
    return JsonResponse(responses.providers_body(params))


@require_GET
@catalog_endpoint
def model_list(request):
    """GET /catalog/models: active models in OpenRouter's ``/api/v1/models`` shape.

    Query: ``provider``, ``search``/``q``, ``modality``, ``input_modality``,
    ``output_modality``, ``min_context``, ``max_price``, ``max_completion_price``,
    ``capability``, ``sort``, ``limit`` (1-1000, default 100), ``offset`` and
    ``include_huggingface`` (default true; adds ``huggingface_metrics``, null when unknown).
    See :class:`catalog.parameters.ModelListParams` for their meaning.
    """
    params = ModelListParams.from_query(request.GET)
    include_huggingface = parse_bool(request.GET, "include_huggingface", True)
    return JsonResponse(responses.models_body(params, include_huggingface=include_huggingface))


@require_GET
@catalog_endpoint
def model_detail(request, provider_name: str, model_name: str):
    """GET /catalog/model/{provider_name}/{model_name}: one model and its offers.

    ``model_name`` may hold slashes, dots and colons. ``gateway`` picks the provider that
    lists it (openrouter, portkey, featherless, deepinfra, chutes or any synced provider
    slug); without it the first match in ``CATALOG_GATEWAY_PREFERENCE`` order wins, then
    the provider named in the path, then the others alphabetically. ``endpoints`` compares
    every provider offering the same model, cheapest first; ``include_huggingface``
    (default true) adds ``huggingface_metrics``.
    """
    checked_text("provider_name", provider_name)
    checked_text("model_name", model_name)
    gateway = parse_text(request.GET, "gateway").lower() or None
    include_huggingface = parse_bool(request.GET, "include_huggingface", True)
    body = responses.model_detail_body(
        provider_name,
        model_name.rstrip("/"),
        gateway=gateway,
        include_huggingface=include_huggingface,
    )
    return JsonResponse(body)


@require_GET
@require_admin_api_key
@catalog_endpoint
def huggingface_cache_status(request):
    """GET /admin/huggingface-cache-status: stored Hugging Face metrics at a glance.

    Entries, fresh and stale counts, oldest and newest fetch, hits, misses and hit rate
    since the last clear. Needs ``Authorization: Bearer <ADMIN_API_KEY>``.
    """
    return JsonResponse(huggingface.cache_status())


@csrf_exempt  # bearer-token API, no cookies involved
@require_POST
@require_admin_api_key
@catalog_endpoint
def refresh_huggingface_cache(request):
    """POST /admin/refresh-huggingface-cache: clear the metrics and queue a refetch (202).

    Needs ``Authorization: Bearer <ADMIN_API_KEY>``.
    """
    result = services.huggingface_cache_refresh()
    return JsonResponse(
        {"detail": "Hugging Face metrics cleared; refetch scheduled.", **result}, status=202
    )
