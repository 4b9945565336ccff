"""The providers the catalog sync knows, one declarative entry each.

An entry says where the model list lives, how to authenticate, where each value sits in
a record (only where it differs from the OpenAI/OpenRouter-like defaults) and in which
unit prices are quoted. The one transform in :mod:`sync.transforms` does the rest. Field
paths are ordered alternatives, so one entry reads every shape a provider has shipped
(Groq's three generations, DeepInfra's two list routes, xAI's two list routes).
"""

from __future__ import annotations

from modelhub.models import ApiFormat
from sync import hooks
from sync.spec import Pagination, ProviderSpec, Unit

T = Unit.USD_PER_TOKEN
M = Unit.USD_PER_MILLION

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
        prepare=hooks.openrouter_prepare,
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
        prepare=hooks.deepinfra_prepare,
        token_prices_apply=hooks.deepinfra_token_priced,
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
        prepare=hooks.fireworks_prepare,
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
        token_prices_apply=hooks.together_token_priced,
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
        prepare=hooks.huggingface_prepare,
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
        prepare=hooks.gemini_prepare,
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
        prepare=hooks.helicone_prepare,
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
        prepare=hooks.aimo_prepare,
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
        prepare=hooks.fal_prepare,
        enrich=hooks.fetch_fal_prices,
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
        prepare=hooks.anthropic_prepare,
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
        prepare=hooks.mistral_prepare,
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
