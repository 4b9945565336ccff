"""The providers the catalog sync knows, one declarative entry each.

An entry says where the model list lives, how to authenticate, where each value sits in
a record (only where it differs from the OpenAI/OpenRouter-like defaults) and in which
unit prices are quoted. The one transform in :mod:`sync.transforms` does the rest. Field
paths are ordered alternatives, so one entry reads every shape a provider has shipped
(Groq's three generations, DeepInfra's two list routes, xAI's two list routes).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from modelhub.models import ApiFormat
from sync.fetch import fetch_fal_prices
from sync.transforms import Unit, cheapest_offer, lookup, to_decimal

Paths = tuple[str, ...]
PriceSources = tuple[tuple[str, Unit], ...]

T = Unit.USD_PER_TOKEN
M = Unit.USD_PER_MILLION

DEFAULT_FIELDS: dict[str, Paths] = {
    "id": ("id",),
    "name": ("name", "display_name", "displayName"),
    "description": ("description",),
    "context_length": ("context_length", "top_provider.context_length"),
    "max_completion_tokens": ("top_provider.max_completion_tokens", "max_completion_tokens"),
    "modality": ("architecture.modality",),
    "input_modalities": ("architecture.input_modalities", "input_modalities"),
    "output_modalities": ("architecture.output_modalities", "output_modalities"),
    "type": ("type",),
    "features": ("supported_features", "features", "capabilities"),
    "supported_parameters": ("supported_parameters",),
    "tokenizer": ("architecture.tokenizer",),
    "instruct_type": ("architecture.instruct_type",),
    "is_moderated": ("top_provider.is_moderated",),
    "canonical_slug": ("canonical_slug",),
    "hugging_face_id": ("hugging_face_id",),
    "per_request_limits": ("per_request_limits",),
    "created": ("created",),
    "deprecated": (),
    "active": ("active",),
    "author": (),
    "owner": ("owned_by",),
}

# OpenRouter's pricing object: USD per token strings, per-call prices for image/request/search.
DEFAULT_PRICES: dict[str, PriceSources] = {
    "pricing_prompt": (("pricing.prompt", T),),
    "pricing_completion": (("pricing.completion", T),),
    "pricing_image": (("pricing.image", Unit.USD),),
    "pricing_request": (("pricing.request", Unit.USD),),
    "pricing_web_search": (("pricing.web_search", Unit.USD),),
    "pricing_internal_reasoning": (("pricing.internal_reasoning", T),),
    "pricing_cache_read": (("pricing.input_cache_read", T),),
    "pricing_cache_write": (("pricing.input_cache_write", T),),
}


@dataclasses.dataclass(frozen=True)
class Pagination:
    """How to ask for the next page.

    ``style``: ``next_link`` (a URL at ``response_key``), ``token`` (a token at
    ``response_key`` sent back as ``param``), ``after_id`` (``has_more`` plus the last id),
    ``offset`` (``total``/``limit``/``offset``).
    """

    style: str
    response_key: str = ""
    param: str = ""
    more_key: str = ""


@dataclasses.dataclass(frozen=True)
class ProviderSpec:
    slug: str
    name: str
    list_url: str
    base_url: str
    env_var: str
    api_format: str = ApiFormat.OPENAI
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"  # "" sends the bare key
    auth_required: bool = True
    extra_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    site_url: str = ""
    logo_url: str = ""
    items_path: str = "data"  # "" for a bare JSON array
    pagination: Pagination | None = None
    fields: Mapping[str, Paths] = dataclasses.field(default_factory=dict)
    prices: Mapping[str, PriceSources] = dataclasses.field(default_factory=dict)
    prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    # Extra calls after the list (fal's prices live behind a second endpoint).
    enrich: Callable[..., list[Any]] | None = None
    # False for records priced per image/second: their token prices are not token prices.
    token_prices_apply: Callable[[Mapping[str, Any]], bool] | None = None
    strip_id_prefixes: tuple[str, ...] = ()
    id_is_hugging_face_id: bool = False
    author_from_id: bool = True
    # For first-party APIs whose records do not name the model's maker.
    default_author: str = ""
    default_modalities: tuple[list[str], list[str]] | None = (["text"], ["text"])
    # Slugs of this provider in OpenRouter's /api/v1/providers (policy URLs).
    openrouter_slugs: tuple[str, ...] = ()
    # Whether calling the models (not listing them) needs a credential; Ollama does not.
    inference_requires_key: bool = True
    # Self-hosted endpoints: the URLs are relative to this environment variable's value.
    base_url_env: str = ""
    # The value used while ``base_url_env`` is unset ("" leaves the provider out).
    default_base_url: str = ""
    in_snapshot: bool = True

    @cached_property
    def field_paths(self) -> dict[str, Paths]:
        return {**DEFAULT_FIELDS, **self.fields}

    @cached_property
    def price_sources(self) -> dict[str, PriceSources]:
        return {**DEFAULT_PRICES, **self.prices}

    # --- runtime configuration -----------------------------------------------------------

    def _base(self) -> str:
        if not self.base_url_env:
            return ""
        return (os.environ.get(self.base_url_env) or self.default_base_url).rstrip("/")

    def resolved_list_url(self) -> str:
        return self.list_url.format(base=self._base())

    def resolved_base_url(self) -> str:
        return self.base_url.format(base=self._base())

    def api_key(self) -> str:
        return os.environ.get(self.env_var, "").strip() if self.env_var else ""

    def skip_reason(self) -> str:
        """Why this provider cannot be synced in this environment, or ""."""
        if self.base_url_env and not self._base():
            return f"{self.base_url_env} is not set"
        if self.auth_required and not self.api_key():
            return f"{self.env_var} is not set"
        return ""

    @property
    def key_configured(self) -> bool:
        return bool(self.api_key())

    def provider_fields(self) -> dict[str, Any]:
        """The Provider columns this registry is the source of truth for."""
        return {
            "name": self.name,
            "base_url": self.resolved_base_url(),
            "api_format": self.api_format,
            "api_key_env_var": self.env_var,
            "requires_api_key": self.inference_requires_key,
            "site_url": self.site_url,
            "logo_url": self.logo_url,
        }


# --- prepare hooks: shapes that paths alone cannot read -----------------------------------


def _openrouter_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The per-model endpoints call nests hosts in ``endpoints[]``: use the cheapest one."""
    if "endpoints" not in raw or "pricing" in raw:
        return raw
    offer = cheapest_offer(raw.get("endpoints"), "pricing.prompt") or {}
    return {
        **raw,
        "pricing": offer.get("pricing") or {},
        "context_length": offer.get("context_length"),
        "top_provider": {"max_completion_tokens": offer.get("max_completion_tokens")},
        "supported_parameters": offer.get("supported_parameters") or [],
    }


def _deepinfra_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    record = dict(raw)
    if "metadata" in raw and raw.get("metadata") is None:
        # The OpenAI route has no metadata for embedding, image and other non-LLM models.
        record["type"] = "other"
    pricing = raw.get("pricing") if isinstance(raw.get("pricing"), Mapping) else {}
    ratio = to_decimal(pricing.get("rate_per_input_token_cached"))
    prompt = to_decimal(pricing.get("cents_per_input_token"))
    if ratio is not None and prompt is not None:
        # /models/list quotes the cached-input price as a fraction of the input price.
        record["_cache_read_cents"] = str(prompt * ratio)
    return record


def _deepinfra_token_priced(record: Mapping[str, Any]) -> bool:
    kind = lookup(record, "pricing.type")
    return not isinstance(kind, str) or kind in {"tokens", "input_tokens"}


def _together_token_priced(record: Mapping[str, Any]) -> bool:
    # Image, audio and transcription models carry 0 or per-character numbers in input/output.
    return record.get("type") not in {"image", "audio", "transcribe", "video"}


def _huggingface_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The router lists each model once with every host; price = cheapest live host."""
    providers = raw.get("providers") if isinstance(raw.get("providers"), list) else []
    contexts = [p.get("context_length") for p in providers if isinstance(p, Mapping)]
    contexts = [c for c in contexts if isinstance(c, int) and c > 0]
    features = []
    for host in providers:
        if isinstance(host, Mapping) and host.get("status") == "live":
            if host.get("supports_tools"):
                features.append("tools")
            if host.get("supports_structured_output"):
                features.append("structured_outputs")
    return {
        **raw,
        "_offer": cheapest_offer(providers, "pricing.input", status_path="status", live="live"),
        "_context": max(contexts) if contexts else None,
        "_features": features,
    }


def _helicone_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**raw, "_offer": cheapest_offer(raw.get("endpoints"), "pricing.prompt")}


def _aimo_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**raw, "_offer": cheapest_offer(raw.get("providers"), "pricing.prompt")}


def _gemini_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    methods = raw.get("supportedGenerationMethods") or []
    if "generateContent" in methods:
        kind = "chat"
    elif "embedContent" in methods:
        kind = "embedding"
    elif "predict" in methods:
        kind = "image"
    else:
        kind = "other"
    return {**raw, "type": kind}


def _mistral_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    capabilities = raw.get("capabilities") if isinstance(raw.get("capabilities"), Mapping) else {}
    if capabilities.get("completion_chat"):
        kind = "chat"
    elif capabilities.get("classification"):
        kind = "moderation"
    else:
        kind = ""  # embeddings and OCR: the id tells
    inputs = ["text", "image"] if capabilities.get("vision") else None
    return {**raw, "type": kind, "_inputs": inputs}


def _anthropic_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    capabilities = raw.get("capabilities") if isinstance(raw.get("capabilities"), Mapping) else {}
    image = lookup(capabilities, "image_input.supported") is True
    # Every Claude model on the Messages API takes tools; the list has no flag for it.
    return {
        **raw,
        "_inputs": ["text", "image"] if image else ["text"],
        "_outputs": ["text"],
        "_features": ["tools"],
    }


def _fireworks_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    image = raw.get("supports_image_input") or raw.get("supportsImageInput")
    kind = str(raw.get("kind") or "").lower()
    if kind == "hf_base_model" and raw.get("supports_chat") is False:
        kind = "other"  # e.g. Whisper: listed as a base model without chat
    return {**raw, "type": kind, "_inputs": ["text", "image"] if image else None}


FAL_IMAGE_UNITS = {"image", "images"}
FAL_REQUEST_UNITS = {"request", "requests", "call", "calls", "generation", "video", "videos"}


def _fal_prepare(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    status = lookup(raw, "metadata.status")
    record = {**raw, "_active": status != "deprecated" if isinstance(status, str) else None}
    pricing = raw.get("pricing")
    if isinstance(pricing, Mapping) and pricing.get("currency", "USD") == "USD":
        unit = str(pricing.get("unit", "")).strip().lower()
        # Only per-image and per-call prices have a column; per megapixel, second or
        # character prices stay in the raw record.
        if unit in FAL_IMAGE_UNITS:
            record["_image_price"] = pricing.get("unit_price")
        elif unit in FAL_REQUEST_UNITS:
            record["_request_price"] = pricing.get("unit_price")
    return record


# --- the registry -------------------------------------------------------------------------

OPENAI_LIKE_MODALITIES = {
    "input_modalities": ("_inputs", "architecture.input_modalities", "input_modalities"),
    "output_modalities": ("_outputs", "architecture.output_modalities", "output_modalities"),
}

PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        slug="openrouter",
        name="OpenRouter",
        list_url="https://openrouter.ai/api/v1/models?output_modalities=all",
        base_url="https://openrouter.ai/api/v1",
        env_var="OPENROUTER_API_KEY",
        auth_required=False,
        site_url="https://openrouter.ai",
        logo_url="https://openrouter.ai/favicon.ico",
        pagination=Pagination(style="next_link", response_key="links.next"),
        fields={"deprecated": ("expiration_date",)},
        prepare=_openrouter_prepare,
    ),
    ProviderSpec(
        slug="deepinfra",
        name="DeepInfra",
        list_url="https://api.deepinfra.com/v1/openai/models",
        base_url="https://api.deepinfra.com/v1/openai",
        env_var="DEEPINFRA_API_KEY",
        auth_required=False,
        site_url="https://deepinfra.com",
        logo_url="https://deepinfra.com/favicon.ico",
        # /v1/openai/models wraps the list in "data"; /models/list is a bare array.
        items_path="data|",
        fields={
            "id": ("id", "model_name"),
            "description": ("metadata.description", "description"),
            # /models/list calls the context window max_tokens.
            "context_length": ("metadata.context_length", "max_tokens"),
            "max_completion_tokens": (),
            "features": ("metadata.tags", "tags"),
            "deprecated": ("deprecated",),
        },
        prices={
            "pricing_prompt": (
                ("metadata.pricing.input_tokens", M),
                ("pricing.cents_per_input_token", Unit.CENTS_PER_TOKEN),
            ),
            "pricing_completion": (
                ("metadata.pricing.output_tokens", M),
                ("pricing.cents_per_output_token", Unit.CENTS_PER_TOKEN),
            ),
            "pricing_cache_read": (
                ("metadata.pricing.cache_read_tokens", M),
                ("_cache_read_cents", Unit.CENTS_PER_TOKEN),
            ),
            "pricing_cache_write": (),
            "pricing_image": (("pricing.cents_per_image_unit", Unit.CENTS),),
            "pricing_request": (),
        },
        prepare=_deepinfra_prepare,
        token_prices_apply=_deepinfra_token_priced,
        openrouter_slugs=("deepinfra",),
    ),
    ProviderSpec(
        slug="featherless",
        name="Featherless",
        list_url="https://api.featherless.ai/v1/models",
        base_url="https://api.featherless.ai/v1",
        env_var="FEATHERLESS_API_KEY",
        auth_required=False,
        site_url="https://featherless.ai",
        logo_url="https://featherless.ai/favicon.ico",
        fields={"max_completion_tokens": ("max_completion_tokens",)},
        # Featherless serves Hugging Face repositories under their repository ids.
        id_is_hugging_face_id=True,
        openrouter_slugs=("featherless",),
    ),
    ProviderSpec(
        slug="groq",
        name="Groq",
        list_url="https://api.groq.com/openai/v1/models",
        base_url="https://api.groq.com/openai/v1",
        env_var="GROQ_API_KEY",
        site_url="https://groq.com",
        logo_url="https://groq.com/favicon.ico",
        fields={
            "context_length": ("context_length", "context_window"),
            "max_completion_tokens": ("max_completion_tokens", "max_output_length"),
            "supported_parameters": ("supported_sampling_parameters",),
        },
        openrouter_slugs=("groq",),
    ),
    ProviderSpec(
        slug="fireworks",
        name="Fireworks AI",
        # The control plane pages and carries descriptions, HF links and capabilities;
        # its model names are the ids the inference API takes.
        list_url="https://api.fireworks.ai/v1/accounts/fireworks/models?pageSize=200",
        base_url="https://api.fireworks.ai/inference/v1",
        env_var="FIREWORKS_API_KEY",
        site_url="https://fireworks.ai",
        logo_url="https://fireworks.ai/favicon.ico",
        items_path="models|data",
        pagination=Pagination(style="token", response_key="nextPageToken", param="pageToken"),
        fields={
            "id": ("id", "name"),
            "name": ("displayName",),
            "context_length": ("context_length", "contextLength"),
            "created": ("created", "createTime"),
            "hugging_face_id": ("huggingFaceUrl",),
            "deprecated": ("deprecationDate",),
            "input_modalities": OPENAI_LIKE_MODALITIES["input_modalities"],
            "features": (
                "supports_tools",
                "supportsTools",
                "supports_image_input",
                "supportsImageInput",
            ),
        },
        prepare=_fireworks_prepare,
        author_from_id=False,
        openrouter_slugs=("fireworks",),
    ),
    ProviderSpec(
        slug="together",
        name="Together AI",
        list_url="https://api.together.xyz/v1/models",
        base_url="https://api.together.xyz/v1",
        env_var="TOGETHER_API_KEY",
        site_url="https://together.ai",
        logo_url="https://together.ai/favicon.ico",
        items_path="",
        fields={
            "name": ("display_name",),
            "author": ("organization",),
            "hugging_face_id": ("link",),
        },
        prices={
            "pricing_prompt": (("pricing.input", M),),
            "pricing_completion": (("pricing.output", M),),
        },
        token_prices_apply=_together_token_priced,
        openrouter_slugs=("together",),
    ),
    ProviderSpec(
        slug="huggingface",
        name="Hugging Face Inference Providers",
        list_url="https://router.huggingface.co/v1/models",
        base_url="https://router.huggingface.co/v1",
        env_var="HF_TOKEN",
        auth_required=False,
        site_url="https://huggingface.co",
        logo_url="https://huggingface.co/favicon.ico",
        fields={"context_length": ("_context",), "features": ("_features",)},
        prices={
            "pricing_prompt": (("_offer.pricing.input", M),),
            "pricing_completion": (("_offer.pricing.output", M),),
        },
        prepare=_huggingface_prepare,
        id_is_hugging_face_id=True,
    ),
    ProviderSpec(
        slug="xai",
        name="xAI",
        list_url="https://api.x.ai/v1/language-models",
        base_url="https://api.x.ai/v1",
        env_var="XAI_API_KEY",
        site_url="https://x.ai",
        logo_url="https://x.ai/favicon.ico",
        items_path="models|data",
        prices={
            "pricing_prompt": (("prompt_text_token_price", Unit.CENTS_PER_HUNDRED_MILLION),),
            "pricing_completion": (
                ("completion_text_token_price", Unit.CENTS_PER_HUNDRED_MILLION),
            ),
            "pricing_cache_read": (
                ("cached_prompt_text_token_price", Unit.CENTS_PER_HUNDRED_MILLION),
            ),
        },
        openrouter_slugs=("xai",),
    ),
    ProviderSpec(
        slug="cerebras",
        name="Cerebras",
        list_url="https://api.cerebras.ai/v1/models",
        base_url="https://api.cerebras.ai/v1",
        env_var="CEREBRAS_API_KEY",
        site_url="https://cerebras.ai",
        logo_url="https://cerebras.ai/favicon.ico",
        openrouter_slugs=("cerebras",),
    ),
    ProviderSpec(
        slug="gemini",
        name="Google Gemini",
        list_url="https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000",
        base_url="https://generativelanguage.googleapis.com/v1beta/openai",
        env_var="GEMINI_API_KEY",
        api_format=ApiFormat.GEMINI,
        # A header, not ?key=: URLs end up in logs and error messages.
        auth_header="x-goog-api-key",
        auth_scheme="",
        site_url="https://ai.google.dev",
        logo_url="https://www.gstatic.com/lamda/images/gemini_favicon.png",
        items_path="models",
        pagination=Pagination(style="token", response_key="nextPageToken", param="pageToken"),
        fields={
            "id": ("name",),
            "name": ("displayName",),
            "context_length": ("inputTokenLimit",),
            "max_completion_tokens": ("outputTokenLimit",),
        },
        prepare=_gemini_prepare,
        default_author="google",
        strip_id_prefixes=("models/",),
        openrouter_slugs=("google-ai-studio",),
    ),
    ProviderSpec(
        slug="nebius",
        name="Nebius Token Factory",
        list_url="https://api.tokenfactory.nebius.com/v1/models",
        base_url="https://api.tokenfactory.nebius.com/v1",
        env_var="NEBIUS_API_KEY",
        site_url="https://nebius.com",
        logo_url="https://nebius.com/favicon.ico",
        openrouter_slugs=("nebius",),
    ),
    ProviderSpec(
        slug="novita",
        name="Novita AI",
        list_url="https://api.novita.ai/openai/v1/models",
        base_url="https://api.novita.ai/openai/v1",
        env_var="NOVITA_API_KEY",
        site_url="https://novita.ai",
        logo_url="https://novita.ai/favicon.ico",
        fields={
            "name": ("display_name", "title"),
            "context_length": ("context_size",),
            "max_completion_tokens": ("max_output_tokens",),
            "type": ("model_type",),
        },
        prices={
            "pricing_prompt": (("input_token_price_per_m", Unit.TEN_THOUSANDTH_USD_PER_MILLION),),
            "pricing_completion": (
                ("output_token_price_per_m", Unit.TEN_THOUSANDTH_USD_PER_MILLION),
            ),
        },
        openrouter_slugs=("novita",),
    ),
    ProviderSpec(
        slug="helicone",
        name="Helicone AI Gateway",
        list_url="https://jawn.helicone.ai/v1/public/model-registry/models",
        base_url="https://ai-gateway.helicone.ai/v1",
        env_var="HELICONE_API_KEY",
        auth_required=False,
        site_url="https://helicone.ai",
        logo_url="https://helicone.ai/favicon.ico",
        items_path="data.models",
        fields={
            "context_length": ("contextLength",),
            "max_completion_tokens": ("maxOutput",),
            "input_modalities": ("inputModalities",),
            "output_modalities": ("outputModalities",),
            "supported_parameters": ("supportedParameters",),
            "author": ("author",),
        },
        prices={
            "pricing_prompt": (("_offer.pricing.prompt", M),),
            "pricing_completion": (("_offer.pricing.completion", M),),
            "pricing_cache_read": (("_offer.pricing.cacheRead", M),),
            "pricing_cache_write": (("_offer.pricing.cacheWrite", M),),
        },
        prepare=_helicone_prepare,
    ),
    ProviderSpec(
        slug="aihubmix",
        name="AiHubMix",
        list_url="https://aihubmix.com/api/v1/models",
        base_url="https://aihubmix.com/v1",
        env_var="AIHUBMIX_API_KEY",
        auth_required=False,
        site_url="https://aihubmix.com",
        logo_url="https://aihubmix.com/favicon.ico",
        fields={
            "id": ("model_id",),
            "description": ("desc",),
            "max_completion_tokens": ("max_output",),
            "type": ("types",),
        },
        prices={
            "pricing_prompt": (("pricing.input", M),),
            "pricing_completion": (("pricing.output", M),),
            "pricing_cache_read": (("pricing.cache_read", M),),
            "pricing_cache_write": (("pricing.cache_write", M),),
        },
    ),
    ProviderSpec(
        slug="anannas",
        name="Anannas",
        list_url="https://api.anannas.ai/v1/models",
        base_url="https://api.anannas.ai/v1",
        env_var="ANANNAS_API_KEY",
        site_url="https://anannas.ai",
        logo_url="https://anannas.ai/favicon.ico",
    ),
    ProviderSpec(
        slug="aimo",
        name="AIMO Network",
        list_url="https://devnet.aimo.network/api/v1/models",
        base_url="https://devnet.aimo.network/api/v1",
        env_var="AIMO_API_KEY",
        site_url="https://aimo.network",
        logo_url="https://aimo.network/favicon.ico",
        prices={
            "pricing_prompt": (("_offer.pricing.prompt", T),),
            "pricing_completion": (("_offer.pricing.completion", T),),
        },
        prepare=_aimo_prepare,
    ),
    ProviderSpec(
        slug="nearai",
        name="NEAR AI Cloud",
        list_url="https://cloud-api.near.ai/v1/model/list?limit=100",
        base_url="https://cloud-api.near.ai/v1",
        env_var="NEARAI_API_KEY",
        auth_required=False,
        site_url="https://near.ai",
        logo_url="https://near.ai/favicon.ico",
        items_path="models",
        pagination=Pagination(style="offset", param="offset"),
        fields={
            "id": ("modelId",),
            "name": ("metadata.modelDisplayName",),
            "description": ("metadata.modelDescription",),
            "context_length": ("metadata.contextLength",),
            "owner": ("metadata.ownedBy",),
        },
        prices={
            "pricing_prompt": (("inputCostPerToken", Unit.SCALED_AMOUNT),),
            "pricing_completion": (("outputCostPerToken", Unit.SCALED_AMOUNT),),
        },
    ),
    ProviderSpec(
        slug="chutes",
        name="Chutes",
        list_url="https://llm.chutes.ai/v1/models",
        base_url="https://llm.chutes.ai/v1",
        env_var="CHUTES_API_KEY",
        auth_required=False,
        site_url="https://chutes.ai",
        logo_url="https://chutes.ai/favicon.ico",
        fields={"context_length": ("context_length", "max_model_len")},
        prices={
            "pricing_prompt": (("pricing.prompt", M), ("price.input.usd", M)),
            "pricing_completion": (("pricing.completion", M), ("price.output.usd", M)),
            "pricing_cache_read": (
                ("pricing.input_cache_read", M),
                ("price.input_cache_read.usd", M),
            ),
            "pricing_cache_write": (),
        },
        openrouter_slugs=("chutes",),
    ),
    ProviderSpec(
        slug="dashscope",
        name="Alibaba Cloud Model Studio (DashScope)",
        list_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1/models",
        base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        env_var="DASHSCOPE_API_KEY",
        site_url="https://www.alibabacloud.com/product/modelstudio",
        logo_url="https://www.alibabacloud.com/favicon.ico",
        default_author="qwen",
        openrouter_slugs=("alibaba",),
    ),
    ProviderSpec(
        slug="fal",
        name="fal.ai",
        list_url="https://api.fal.ai/v1/models?limit=100",
        base_url="https://fal.run",
        env_var="FAL_KEY",
        api_format=ApiFormat.OTHER,
        auth_scheme="Key",
        auth_required=False,
        site_url="https://fal.ai",
        logo_url="https://fal.ai/favicon.ico",
        items_path="models",
        pagination=Pagination(
            style="token", response_key="next_cursor", param="cursor", more_key="has_more"
        ),
        fields={
            "id": ("endpoint_id",),
            "name": ("metadata.display_name",),
            "description": ("metadata.description",),
            "type": ("metadata.category",),
            "created": ("metadata.date",),
            "active": ("_active",),
        },
        prices={
            "pricing_image": (("_image_price", Unit.USD),),
            "pricing_request": (("_request_price", Unit.USD),),
            "pricing_prompt": (),
            "pricing_completion": (),
        },
        prepare=_fal_prepare,
        enrich=fetch_fal_prices,
        default_modalities=None,
    ),
    ProviderSpec(
        slug="vercel",
        name="Vercel AI Gateway",
        list_url="https://ai-gateway.vercel.sh/v1/models",
        base_url="https://ai-gateway.vercel.sh/v1",
        env_var="AI_GATEWAY_API_KEY",
        auth_required=False,
        site_url="https://vercel.com/ai-gateway",
        logo_url="https://vercel.com/favicon.ico",
        fields={
            "context_length": ("context_window",),
            "max_completion_tokens": ("max_tokens",),
            "features": ("tags",),
        },
        prices={
            "pricing_prompt": (("pricing.input", T),),
            "pricing_completion": (("pricing.output", T),),
            "pricing_cache_read": (("pricing.input_cache_read", T),),
            "pricing_cache_write": (("pricing.input_cache_write", T),),
        },
    ),
    ProviderSpec(
        slug="portkey",
        name="Portkey",
        list_url="https://api.portkey.ai/v1/models",
        base_url="https://api.portkey.ai/v1",
        env_var="PORTKEY_API_KEY",
        auth_header="x-portkey-api-key",
        auth_scheme="",
        site_url="https://portkey.ai",
        logo_url="https://portkey.ai/favicon.ico",
        # Ids are "@<workspace provider slug>/<model>": the prefix is not an author.
        author_from_id=False,
        # The list is one workspace's catalog, meaningless on another machine.
        in_snapshot=False,
    ),
    ProviderSpec(
        slug="openai",
        name="OpenAI",
        # OPENAI_BASE_URL points both the sync and the gateway at a compatible endpoint.
        list_url="{base}/models",
        base_url="{base}",
        base_url_env="OPENAI_BASE_URL",
        default_base_url="https://api.openai.com/v1",
        env_var="OPENAI_API_KEY",
        site_url="https://openai.com",
        logo_url="https://openai.com/favicon.ico",
        openrouter_slugs=("openai",),
    ),
    ProviderSpec(
        slug="anthropic",
        name="Anthropic",
        list_url="https://api.anthropic.com/v1/models?limit=1000",
        base_url="https://api.anthropic.com/v1",
        env_var="ANTHROPIC_API_KEY",
        api_format=ApiFormat.ANTHROPIC,
        auth_header="x-api-key",
        auth_scheme="",
        extra_headers={"anthropic-version": "2023-06-01"},
        site_url="https://www.anthropic.com",
        logo_url="https://www.anthropic.com/favicon.ico",
        pagination=Pagination(
            style="after_id", response_key="last_id", param="after_id", more_key="has_more"
        ),
        fields={
            "context_length": ("max_input_tokens",),
            "max_completion_tokens": ("max_tokens",),
            "created": ("created_at",),
            "features": ("capabilities", "_features"),
            "input_modalities": ("_inputs",),
            "output_modalities": ("_outputs",),
        },
        prepare=_anthropic_prepare,
        default_author="anthropic",
        openrouter_slugs=("anthropic",),
    ),
    ProviderSpec(
        slug="mistral",
        name="Mistral AI",
        list_url="https://api.mistral.ai/v1/models",
        base_url="https://api.mistral.ai/v1",
        env_var="MISTRAL_API_KEY",
        site_url="https://mistral.ai",
        logo_url="https://mistral.ai/favicon.ico",
        fields={
            # Every alias is listed as its own model; ``name`` is the dated model they
            # all point at, which is what a canonical slug is.
            "canonical_slug": ("name",),
            "context_length": ("max_context_length",),
            "deprecated": ("deprecation",),
            "input_modalities": ("_inputs",),
        },
        prepare=_mistral_prepare,
        default_author="mistralai",
        openrouter_slugs=("mistral",),
    ),
    ProviderSpec(
        slug="ollama",
        name="Ollama",
        list_url="{base}/api/tags",
        base_url="{base}/v1",
        env_var="OLLAMA_API_KEY",
        api_format=ApiFormat.OLLAMA,
        auth_required=False,
        site_url="https://ollama.com",
        logo_url="https://ollama.com/public/ollama.png",
        items_path="models|data",
        fields={"id": ("model", "name", "id"), "name": ("name", "id"), "created": ("created",)},
        author_from_id=False,
        inference_requires_key=False,
        base_url_env="OLLAMA_BASE_URL",
        in_snapshot=False,
    ),
)

REGISTRY: dict[str, ProviderSpec] = {spec.slug: spec for spec in PROVIDERS}


def get_spec(slug: str) -> ProviderSpec | None:
    return REGISTRY.get(slug)


def all_specs() -> tuple[ProviderSpec, ...]:
    return PROVIDERS
