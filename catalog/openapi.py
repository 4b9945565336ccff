"""The public catalog's operations in the OpenAPI schema (its views are plain Django views
for speed; see ``catalog.views``), and its two cache administration endpoints."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from catalog.parameters import DEFAULT_MODEL_LIMIT, MAX_LIMIT, SORTS
from modelhub.api.openapi import ADMIN_KEY_AUTH, NO_AUTH, DetailErrorSerializer, Operation
from modelhub.models import CAPABILITY_FIELDS


class CatalogPricingSerializer(serializers.Serializer):
    """USD per unit as decimal strings, as OpenRouter writes them; prices the provider
    does not state are absent (prompt and completion are always present, maybe null)."""

    prompt = serializers.CharField(allow_null=True, help_text="Per prompt token.")
    completion = serializers.CharField(allow_null=True, help_text="Per completion token.")
    image = serializers.CharField(required=False, help_text="Per input image.")
    request = serializers.CharField(required=False, help_text="Per request.")
    web_search = serializers.CharField(required=False, help_text="Per web search.")
    internal_reasoning = serializers.CharField(required=False, help_text="Per reasoning token.")
    input_cache_read = serializers.CharField(
        required=False, help_text="Per prompt token read from the cache."
    )
    input_cache_write = serializers.CharField(
        required=False, help_text="Per prompt token written to the cache."
    )


class CatalogArchitectureSerializer(serializers.Serializer):
    modality = serializers.CharField(allow_null=True, help_text="E.g. `text+image->text`.")
    input_modalities = serializers.ListField(
        child=serializers.CharField(), help_text="What the model reads."
    )
    output_modalities = serializers.ListField(
        child=serializers.CharField(), help_text="What the model writes."
    )
    tokenizer = serializers.CharField(allow_null=True, help_text="Tokenizer family.")
    instruct_type = serializers.CharField(allow_null=True, help_text="Chat template family.")


class CatalogTopProviderSerializer(serializers.Serializer):
    is_moderated = serializers.BooleanField(help_text="The provider moderates the content.")
    context_length = serializers.IntegerField(allow_null=True, help_text="Context window.")
    max_completion_tokens = serializers.IntegerField(
        allow_null=True, help_text="Longest answer, in tokens."
    )


class CatalogModelSerializer(serializers.Serializer):
    """One model as one provider sells it, in OpenRouter's ``/api/v1/models`` shape."""

    id = serializers.CharField(help_text="The name to send to this provider.")
    name = serializers.CharField(help_text="Display name.")
    created = serializers.IntegerField(allow_null=True, help_text="Unix time of publication.")
    description = serializers.CharField(help_text="The provider's description.")
    architecture = CatalogArchitectureSerializer(help_text="Modalities and tokenizer.")
    top_provider = CatalogTopProviderSerializer(help_text="Limits at this provider.")
    pricing = CatalogPricingSerializer(help_text="Prices in USD per unit.")
    canonical_slug = serializers.CharField(
        allow_null=True, help_text="Provider-independent slug of the weights."
    )
    context_length = serializers.IntegerField(allow_null=True, help_text="Context window.")
    hugging_face_id = serializers.CharField(
        allow_null=True, help_text="Repository of the weights on Hugging Face."
    )
    per_request_limits = serializers.DictField(
        allow_null=True, help_text="Per-request token limits the provider states."
    )
    supported_parameters = serializers.ListField(
        child=serializers.CharField(), help_text="Request parameters the provider honours."
    )
    provider_slug = serializers.CharField(help_text="The provider selling it.")
    huggingface_metrics = serializers.DictField(
        allow_null=True,
        required=False,
        help_text="Downloads, likes and the like from Hugging Face; null when unknown.",
    )


class CatalogEndpointSerializer(serializers.Serializer):
    """One provider's offer of the model."""

    provider_name = serializers.CharField(help_text="Provider's display name.")
    provider_slug = serializers.CharField(help_text="Provider's slug.")
    gateway = serializers.CharField(help_text="Where the offer was listed.")
    model_id = serializers.CharField(help_text="The name to send to that provider.")
    context_length = serializers.IntegerField(allow_null=True, help_text="Context window.")
    pricing = CatalogPricingSerializer(help_text="Prices in USD per unit.")
    max_completion_tokens = serializers.IntegerField(
        allow_null=True, help_text="Longest answer, in tokens."
    )
    max_prompt_tokens = serializers.IntegerField(
        allow_null=True, help_text="Longest prompt, in tokens, when stated."
    )
    quantization = serializers.CharField(allow_null=True, help_text="Weights' precision.")
    supported_parameters = serializers.ListField(
        child=serializers.CharField(), help_text="Request parameters honoured."
    )
    status = serializers.IntegerField(allow_null=True, help_text="Live status (OpenRouter).")
    uptime_last_30m = serializers.FloatField(
        allow_null=True, help_text="Live uptime in percent (OpenRouter)."
    )


class CatalogModelDetailDataSerializer(CatalogModelSerializer):
    provider_site_url = serializers.CharField(allow_null=True, help_text="Author's site.")
    model_logo_url = serializers.CharField(allow_null=True, help_text="Author's logo.")
    source_gateway = serializers.CharField(help_text="The provider whose listing is shown.")
    endpoints = CatalogEndpointSerializer(
        many=True, help_text="Every provider offering the model, cheapest first."
    )


class CatalogModelDetailSerializer(serializers.Serializer):
    data = CatalogModelDetailDataSerializer(help_text="The model.")
    provider = serializers.CharField(help_text="Provider as written in the path.")
    model = serializers.CharField(help_text="Model as written in the path.")
    gateway = serializers.CharField(help_text="The provider whose listing is shown.")
    include_huggingface = serializers.BooleanField(help_text="Echo of the parameter.")
    timestamp = serializers.DateTimeField(help_text="When the answer was made.")


class CatalogProviderSerializer(serializers.Serializer):
    """One provider in OpenRouter's ``/api/v1/providers`` shape, with catalog counts."""

    name = serializers.CharField(help_text="Display name.")
    slug = serializers.CharField(help_text="Identifier used everywhere else.")
    privacy_policy_url = serializers.CharField(allow_null=True, help_text="Privacy policy.")
    terms_of_service_url = serializers.CharField(allow_null=True, help_text="Terms.")
    status_page_url = serializers.CharField(allow_null=True, help_text="Status page.")
    may_log_prompts = serializers.BooleanField(allow_null=True, help_text="May keep prompts.")
    may_train_on_data = serializers.BooleanField(allow_null=True, help_text="May train on prompts.")
    moderated_by_openrouter = serializers.BooleanField(help_text="OpenRouter moderates it.")
    needs_moderated = serializers.BooleanField(help_text="Requests must be moderated.")
    logo_url = serializers.CharField(allow_null=True, help_text="Logo.")
    site_url = serializers.CharField(allow_null=True, help_text="Web site.")
    model_count = serializers.IntegerField(allow_null=True, help_text="Active models.")
    last_synced_at = serializers.DateTimeField(allow_null=True, help_text="Last catalog sync.")


class _CatalogPageSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Matches in all.")
    returned = serializers.IntegerField(help_text="Entries in `data`.")
    offset = serializers.IntegerField(help_text="Echo of `offset`.")
    limit = serializers.IntegerField(allow_null=True, help_text="Echo of `limit`.")
    timestamp = serializers.DateTimeField(help_text="When the answer was made.")


class CatalogProviderListSerializer(_CatalogPageSerializer):
    data = CatalogProviderSerializer(many=True, help_text="The providers.")


class CatalogModelListSerializer(_CatalogPageSerializer):
    data = CatalogModelSerializer(many=True, help_text="The models.")
    include_huggingface = serializers.BooleanField(help_text="Echo of the parameter.")


class UnknownGatewaySerializer(DetailErrorSerializer):
    valid_gateways = serializers.ListField(
        child=serializers.CharField(), help_text="Gateways that may be named."
    )


class HuggingFaceCacheStatusSerializer(serializers.Serializer):
    entries = serializers.IntegerField(help_text="Stored metric rows.")
    fresh = serializers.IntegerField(help_text="Rows younger than `fresh_seconds`.")
    stale = serializers.IntegerField(help_text="Rows due for a refetch.")
    with_metrics = serializers.IntegerField(help_text="Rows Hugging Face knew.")
    failed = serializers.IntegerField(help_text="Rows whose last fetch failed.")
    oldest_fetched_at = serializers.DateTimeField(allow_null=True, help_text="Oldest fetch.")
    newest_fetched_at = serializers.DateTimeField(allow_null=True, help_text="Newest fetch.")
    fresh_seconds = serializers.IntegerField(help_text="How long a fetch stays fresh.")
    live_fetches_per_request = serializers.IntegerField(
        help_text="Fetches one catalog request may make."
    )
    paused = serializers.BooleanField(help_text="Fetching paused after upstream failures.")
    hits = serializers.IntegerField(help_text="Lookups served from the store.")
    misses = serializers.IntegerField(help_text="Lookups that needed a fetch.")
    hit_rate = serializers.FloatField(allow_null=True, help_text="hits / (hits + misses).")


class HuggingFaceCacheRefreshSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What happened.")
    cleared = serializers.IntegerField(help_text="Metric rows removed.")
    scheduled = serializers.BooleanField(help_text="A refetch was queued.")


def _query(name, type_, description, **extra):
    return OpenApiParameter(name, type_, OpenApiParameter.QUERY, description=description, **extra)


_PAGE = [
    _query("limit", int, f"Entries per page, 1 to {MAX_LIMIT}."),
    _query("offset", int, "Entries to skip."),
]
_HUGGINGFACE = _query("include_huggingface", bool, "Add `huggingface_metrics` (default true).")
_ERRORS = {
    400: OpenApiResponse(DetailErrorSerializer, description="A parameter is invalid."),
    503: OpenApiResponse(DetailErrorSerializer, description="The database is unreachable."),
}
_ADMIN_ERRORS = {
    401: OpenApiResponse(DetailErrorSerializer, description="Missing or wrong admin key."),
    503: OpenApiResponse(DetailErrorSerializer, description="ADMIN_API_KEY is not set."),
}

OPERATIONS = [
    Operation(
        "/catalog/providers",
        "get",
        {
            "operation_id": "catalog_providers",
            "summary": "List providers (also at /catalog/provider)",
            "tags": ["catalog"],
            "auth": NO_AUTH,
            "parameters": [
                _query("moderated_only", bool, "Only providers OpenRouter moderates."),
                *_PAGE,
            ],
            "responses": {200: CatalogProviderListSerializer, **_ERRORS},
        },
    ),
    Operation(
        "/catalog/models",
        "get",
        {
            "operation_id": "catalog_models",
            "summary": "Search the models of every provider",
            "tags": ["catalog"],
            "auth": NO_AUTH,
            "parameters": [
                _query("provider", str, "Provider slugs, comma-separated or repeated."),
                _query("search", str, "Words matched in name, id, author, Hugging Face id."),
                _query("q", str, "Same as `search`."),
                _query("modality", str, "Exact `text+image->text`, or one modality name."),
                _query("input_modality", str, "A modality the model reads."),
                _query("output_modality", str, "A modality the model writes."),
                _query("min_context", int, "Smallest context window, in tokens."),
                _query("max_price", OpenApiTypes.DECIMAL, "Highest USD per prompt token."),
                _query(
                    "max_completion_price", OpenApiTypes.DECIMAL, "Highest USD per output token."
                ),
                _query(
                    "capability",
                    str,
                    "Capabilities that must all hold, comma-separated.",
                    enum=sorted(CAPABILITY_FIELDS),
                ),
                _query("sort", str, "Order of the results (default name).", enum=list(SORTS)),
                _query(
                    "limit", int, f"Entries per page, 1 to {MAX_LIMIT} ({DEFAULT_MODEL_LIMIT})."
                ),
                _query("offset", int, "Entries to skip."),
                _HUGGINGFACE,
            ],
            "responses": {200: CatalogModelListSerializer, **_ERRORS},
        },
    ),
    Operation(
        "/catalog/model/{provider_name}/{model_name}",
        "get",
        {
            "operation_id": "catalog_model",
            "summary": "One model and its price at every provider",
            "tags": ["catalog"],
            "auth": NO_AUTH,
            "parameters": [
                OpenApiParameter(
                    "provider_name", str, OpenApiParameter.PATH, description="Provider or author."
                ),
                OpenApiParameter(
                    "model_name",
                    str,
                    OpenApiParameter.PATH,
                    description="The model's name; may hold slashes, dots and colons.",
                ),
                _query("gateway", str, "The provider whose listing to show."),
                _HUGGINGFACE,
            ],
            "responses": {
                200: CatalogModelDetailSerializer,
                400: OpenApiResponse(UnknownGatewaySerializer, description="Unknown gateway."),
                404: OpenApiResponse(DetailErrorSerializer, description="Unknown model."),
                503: _ERRORS[503],
            },
        },
        path_types={"model_name": "path"},
    ),
    Operation(
        "/admin/huggingface-cache-status",
        "get",
        {
            "operation_id": "huggingface_cache_status",
            "summary": "Hugging Face metrics store at a glance",
            "tags": ["operators"],
            "auth": ADMIN_KEY_AUTH,
            "responses": {200: HuggingFaceCacheStatusSerializer, **_ADMIN_ERRORS},
        },
    ),
    Operation(
        "/admin/refresh-huggingface-cache",
        "post",
        {
            "operation_id": "huggingface_cache_refresh",
            "summary": "Clear the Hugging Face metrics and queue a refetch",
            "tags": ["operators"],
            "auth": ADMIN_KEY_AUTH,
            "request": None,
            "responses": {202: HuggingFaceCacheRefreshSerializer, **_ADMIN_ERRORS},
        },
    ),
]
