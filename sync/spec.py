"""What one provider's registry entry says, and the units its prices are quoted in.

Kept apart from :mod:`sync.registry` (the entries themselves) so that the transform and
the fetch, which read a spec, and the provider hooks, which the entries name, depend on
this module and not on each other.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cached_property
from typing import Any

from modelhub.models import ApiFormat


class Unit(enum.Enum):
    """How a provider quotes a price; ``factor`` converts it to USD per token."""

    USD_PER_TOKEN = ("usd/token", Decimal(1))
    USD_PER_MILLION = ("usd/1M tokens", Decimal("1e-6"))
    CENTS_PER_TOKEN = ("cents/token", Decimal("0.01"))
    # Novita: integers in units of 0.0001 USD per 1M tokens.
    TEN_THOUSANDTH_USD_PER_MILLION = ("0.0001 usd/1M tokens", Decimal("1e-10"))
    # xAI: integers in US cents per 100M tokens.
    CENTS_PER_HUNDRED_MILLION = ("cents/100M tokens", Decimal("1e-10"))
    # NEAR AI: ``{"amount": 15, "scale": 8}`` means 15 x 10^-8 USD per token.
    SCALED_AMOUNT = ("amount x 10^-scale usd/token", Decimal(1))
    # A price per call, request or image: stored as quoted, in USD or in cents.
    USD = ("usd", Decimal(1))
    CENTS = ("cents", Decimal("0.01"))

    @property
    def factor(self) -> Decimal:
        return self.value[1]


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
