"""Reads of the public catalog: providers, filtered model pages, model lookup, offers.

Only global rows are public: an organization's private providers and models are tenant data
and never appear here. A model is listed when it and its provider are active.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When

from catalog.parameters import CAPABILITIES, ModelListParams, ProviderListParams
from modelhub.cache import catalog_version
from modelhub.models import Model, Provider
from modelhub.selectors import equivalent_models

# Columns the catalog never shows; the raw upstream record can be large.
DEFERRED_MODEL_COLUMNS = ("raw", "sync_hash")


def public_providers() -> QuerySet[Provider]:
    return Provider.objects.global_rows().filter(is_active=True)


def public_models() -> QuerySet[Model]:
    return (
        Model.objects.global_rows()
        .active()
        .select_related("provider")
        .defer(*DEFERRED_MODEL_COLUMNS)
    )


def provider_page(params: ProviderListParams) -> tuple[int, list[Provider]]:
    """The total number of matching providers and the requested page, with model counts."""
    providers = public_providers()
    if params.moderated_only:
        providers = providers.filter(moderated_by_openrouter=True)
    total = providers.count()
    page = providers.annotate(
        model_count=Count("models", filter=Q(models__is_active=True))
    ).order_by("name", "id")
    start = params.page.offset
    stop = start + params.page.limit if params.page.limit is not None else None
    return total, list(page[start:stop])


def _modality_side_regex(name: str, side: str) -> str:
    token = re.escape(name)
    if side == "input":
        return rf"(^|\+){token}(\+|->)"
    return rf"->(.*\+)?{token}(\+|$)"


def filtered_models(params: ModelListParams) -> QuerySet[Model]:
    models = public_models()
    if params.providers:
        models = models.filter(provider__slug__in=params.providers)
    for word in params.search.split():
        models = models.filter(
            Q(model_name__icontains=word)
            | Q(provider_model_id__icontains=word)
            | Q(author__icontains=word)
            | Q(hugging_face_id__icontains=word)
        )
    if params.modality:
        if "->" in params.modality:
            models = models.filter(modality__iexact=params.modality)
        else:
            models = models.filter(modality__icontains=params.modality)
    if params.input_modality:
        models = models.filter(
            modality__iregex=_modality_side_regex(params.input_modality, "input")
        )
    if params.output_modality:
        models = models.filter(
            modality__iregex=_modality_side_regex(params.output_modality, "output")
        )
    if params.min_context is not None:
        models = models.filter(context_length__gte=params.min_context)
    # Negative prices are OpenRouter's "variable" sentinel, not bargains.
    if params.max_price is not None:
        models = models.filter(pricing_prompt__gte=0, pricing_prompt__lte=params.max_price)
    if params.max_completion_price is not None:
        models = models.filter(
            pricing_completion__gte=0, pricing_completion__lte=params.max_completion_price
        )
    for capability in params.capabilities:
        models = models.filter(**{CAPABILITIES[capability]: True})
    return _sorted(models, params.sort)


def _sorted(models: QuerySet[Model], sort: str) -> QuerySet[Model]:
    if sort in ("price", "-price"):
        # Variable-price routers ("-1") go last either way, like unknown prices.
        variable = Case(
            When(pricing_prompt__lt=0, then=Value(1)), default=Value(0), output_field=IntegerField()
        )
        price = F("pricing_prompt")
        price = price.asc(nulls_last=True) if sort == "price" else price.desc(nulls_last=True)
        return models.alias(variable_price=variable).order_by("variable_price", price, "id")
    if sort == "context":
        return models.order_by(F("context_length").desc(nulls_last=True), "id")
    if sort == "-context":
        return models.order_by(F("context_length").asc(nulls_last=True), "id")
    if sort == "newest":
        return models.order_by(F("upstream_created_at").desc(nulls_last=True), "-created_at", "-id")
    if sort == "oldest":
        return models.order_by(F("upstream_created_at").asc(nulls_last=True), "created_at", "id")
    return models.order_by("model_name", "id")


def model_page(params: ModelListParams) -> tuple[int, list[Model]]:
    """The total number of matching models and the requested page (three queries at most)."""
    models = filtered_models(params)
    total = models.count()
    start = params.page.offset
    if start >= total:
        return total, []
    return total, list(models[start : start + params.page.limit])


# --- Lookup of one model --------------------------------------------------------------


@dataclass(frozen=True)
class ProviderRef:
    id: int
    slug: str
    name: str
    site_url: str
    logo_url: str


def provider_index() -> dict[str, ProviderRef]:
    """Public providers by slug; a small table, cached until the catalog changes."""
    key = f"catalog:v{catalog_version()}:provider-index"
    index = cache.get(key)
    if index is None:
        index = {
            slug: ProviderRef(id=pk, slug=slug, name=name, site_url=site, logo_url=logo)
            for pk, slug, name, site, logo in public_providers().values_list(
                "id", "slug", "name", "site_url", "logo_url"
            )
        }
        cache.set(key, index, settings.CATALOG_PROVIDERS_CACHE_SECONDS)
    return index


def valid_gateways() -> list[str]:
    """The well-known gateways plus every synced provider slug, for ``gateway=``."""
    return sorted(set(settings.CATALOG_GATEWAY_PREFERENCE) | set(provider_index()))


def gateway_rank(slug: str, provider_name: str) -> tuple[int, str]:
    """Auto-detection order: the configured gateways in order (by default openrouter,
    portkey, featherless, deepinfra, chutes), then the provider named in the path
    (its own listing of ``model_name``), then every other provider alphabetically."""
    preference = list(settings.CATALOG_GATEWAY_PREFERENCE)
    if slug in preference:
        return preference.index(slug), slug
    if slug == provider_name.lower():
        return len(preference), slug
    return len(preference) + 1, slug


def find_model(provider_name: str, model_name: str, gateway: str | None = None) -> Model | None:
    """The model that ``provider_name/model_name`` names, on ``gateway`` or auto-detected.

    A provider lists it either under the full id (``openai/gpt-4o`` on a gateway) or, when
    ``provider_name`` is the provider's own slug, under ``model_name`` alone. An exact id
    wins over a case-insensitive one; among matches the :func:`gateway_rank` order decides.
    """
    index = provider_index()
    if gateway is not None:
        ref = index.get(gateway)
        if ref is None:
            return None
        provider_ids = [ref.id]
    else:
        provider_ids = [ref.id for ref in index.values()]
    if not provider_ids:
        return None
    full_id = f"{provider_name}/{model_name}"
    own = index.get(provider_name.lower())
    own_listing = own is not None and own.id in provider_ids

    def matches(lookup: str) -> Q:
        condition = Q(provider_id__in=provider_ids, **{f"provider_model_id{lookup}": full_id})
        if own_listing:
            condition |= Q(provider_id=own.id, **{f"provider_model_id{lookup}": model_name})
        return condition

    candidates = list(public_models().filter(matches("")))
    if not candidates:
        # Casing differs between sources for the same weights (Llama-3.3-70B vs llama-3.3-70b).
        candidates = list(public_models().filter(matches("__iexact")))
    if not candidates:
        return None
    candidates.sort(key=lambda m: (gateway_rank(m.provider.slug, provider_name), m.id))
    return candidates[0]


# --- Offers of the same model across providers ----------------------------------------


def offers_of(model: Model) -> list[Model]:
    """Every public offer of the same model (``model`` included), matched by canonical id,
    Hugging Face id or normalised name (see ``modelhub.selectors.equivalent_models``)."""
    return equivalent_models([model], public_models())
