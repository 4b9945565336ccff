"""Parse: the request body checked and read into a :class:`GatewayCall`.

A body the gateway cannot serve is refused here with a 400 that says what to fix, before
any database or upstream work. The token estimates steer routing and the per-minute
limits; the bounds (``prompt_bound``, ``output_bound``) are what a budget reserves.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.conf import settings

from gateway import anthropic, jsoncodec
from gateway.auth import ClientKeyInfo
from gateway.call import GatewayCall
from gateway.dialect import OPENAI, Dialect
from gateway.errors import InvalidRequest
from gateway.request_ids import new_request_id
from gateway.upstreams import CHAT, COMPLETIONS, EMBEDDINGS, Endpoint
from modelhub.models import ApiFormat, Model
from modelhub.routing import (
    DATA_COLLECTION_CHOICES,
    MAX_PRICE_COLUMNS,
    PARAMETER_ALIASES,
    PREFERENCE_SORTS,
    REQUEST_PARAMETERS,
    ProviderPreferences,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

# Deepest nesting of arrays and objects accepted in a body. Real requests (messages with
# content parts, tools with JSON schemas) stay far below it; a deeper body would make the
# recursive walks after parsing (token estimate, encoding for the upstream) hit Python's
# recursion limit.
MAX_JSON_DEPTH = 128
TOO_DEEP = "The JSON body of your request is nested too deeply."


def too_deep(value: dict | list, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def is_storable_text(value: str) -> bool:
    """Whether ``value`` can be stored and compared as database text: no NUL (PostgreSQL
    refuses it) and no lone surrogate (not encodable as UTF-8)."""
    if value.isascii():
        return "\x00" not in value
    if "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_body(raw: bytes, endpoint: Endpoint, dialect: Dialect = OPENAI) -> dict:
    try:
        body = jsoncodec.loads(raw or b"", allow_nan=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            code="invalid_json",
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest(TOO_DEEP, code="invalid_json") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if too_deep(body):
        raise InvalidRequest(TOO_DEEP, code="invalid_json")
    body = dialect.chat_body(body)
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise InvalidRequest("'models' must be a list of model names.", param="models")
    if models and not all(is_storable_text(m) for m in models):
        raise InvalidRequest(
            "'models' must not contain NUL characters or unpaired surrogates.",
            param="models",
            code="invalid_value",
        )
    model = body.get("model")
    if model is None and models:
        body["model"] = model = models[0]
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "You must provide a model parameter.", param="model", code="missing_required_parameter"
        )
    if not is_storable_text(model):
        raise InvalidRequest(
            "'model' must not contain NUL characters or unpaired surrogates.",
            param="model",
            code="invalid_value",
        )
    if endpoint is CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest(
                "'messages' must be a non-empty list of messages.",
                param="messages",
                code="missing_required_parameter" if messages is None else "invalid_value",
            )
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequest(
                    f"messages[{index}] must be an object with a 'role'.",
                    param=f"messages[{index}]",
                    code="invalid_value",
                )
    elif endpoint is COMPLETIONS:
        if not isinstance(body.get("prompt"), (str, list)):
            raise InvalidRequest(
                "You must provide a prompt parameter.",
                param="prompt",
                code="missing_required_parameter",
            )
    elif endpoint is EMBEDDINGS and not isinstance(body.get("input"), (str, list)):
        raise InvalidRequest(
            "You must provide an input parameter.", param="input", code="missing_required_parameter"
        )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_value")
    return body


# --- Provider preferences (OpenRouter's ``provider`` object) --------------------------------

PREFERENCE_KEYS = (
    "order",
    "only",
    "ignore",
    "allow_fallbacks",
    "sort",
    "max_price",
    "data_collection",
    "require_parameters",
)
# Bounds of a slug list: more providers than any catalog has, slugs as long as the column.
MAX_PREFERENCE_SLUGS = 50
MAX_SLUG_LENGTH = 100


def _preference_error(key: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=f"provider.{key}", code=code)


def _slug_list(key: str, value: object) -> list[str]:
    if (
        not isinstance(value, list)
        or len(value) > MAX_PREFERENCE_SLUGS
        or not all(
            isinstance(slug, str)
            and slug.strip()
            and len(slug) <= MAX_SLUG_LENGTH
            and is_storable_text(slug)
            for slug in value
        )
    ):
        raise _preference_error(
            key,
            f"'provider.{key}' must be a list of at most {MAX_PREFERENCE_SLUGS} provider "
            'slugs, e.g. ["openai", "azure"].',
        )
    return value


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _preference_error(key, f"'provider.{key}' must be true or false.")
    return value


def _choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(f'"{choice}"' for choice in choices)
        raise _preference_error(key, f"'provider.{key}' must be one of {allowed}.")
    return value


def _max_price(value: object) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        raise _preference_error(
            "max_price",
            "'provider.max_price' must be an object such as "
            '{"prompt": 1.5, "completion": 2} (USD per million tokens).',
        )
    prices = {}
    for key, price in value.items():
        name = f"max_price.{key[:100]}"
        if key not in MAX_PRICE_COLUMNS:
            known = ", ".join(MAX_PRICE_COLUMNS)
            raise _preference_error(
                name,
                f"Unknown key 'provider.{name}'; max_price takes {known}.",
                code="unknown_parameter",
            )
        if price is None:
            continue
        amount = None
        if isinstance(price, (int, float)) and not isinstance(price, bool):
            if math.isfinite(price):
                amount = Decimal(str(price))
        elif isinstance(price, str) and len(price) <= 40:
            try:
                amount = Decimal(price.strip())
            except InvalidOperation:
                amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            raise _preference_error(
                name, f"'provider.{name}' must be a number of USD, zero or more."
            )
        prices[key] = amount
    return prices


def provider_preferences(body: dict) -> ProviderPreferences | None:
    """The body's ``provider`` object checked and read, or None when it has none.

    An unknown key or a value of the wrong type is a 400 naming it (``provider.sort``),
    rather than preferences silently ignored; a null value means "not given".
    """
    value = body.get("provider")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(
            "'provider' must be an object of provider preferences, "
            'e.g. {"only": ["openai"], "allow_fallbacks": false}.',
            param="provider",
            code="invalid_value",
        )
    for key in value:
        if key not in PREFERENCE_KEYS:
            key = key[:100]
            raise _preference_error(
                key,
                f"Unknown key 'provider.{key}'; provider preferences take "
                f"{', '.join(PREFERENCE_KEYS)}.",
                code="unknown_parameter",
            )
    given = {key: item for key, item in value.items() if item is not None}
    preferences = ProviderPreferences.build(
        order=_slug_list("order", given["order"]) if "order" in given else None,
        only=_slug_list("only", given["only"]) if "only" in given else None,
        ignore=_slug_list("ignore", given["ignore"]) if "ignore" in given else None,
        allow_fallbacks=(
            _boolean("allow_fallbacks", given["allow_fallbacks"])
            if "allow_fallbacks" in given
            else None
        ),
        sort=_choice("sort", given["sort"], PREFERENCE_SORTS) if "sort" in given else None,
        max_price=_max_price(given["max_price"]) if "max_price" in given else None,
        data_collection=(
            _choice("data_collection", given["data_collection"], DATA_COLLECTION_CHOICES)
            if "data_collection" in given
            else None
        ),
        require_parameters=(
            _boolean("require_parameters", given["require_parameters"])
            if "require_parameters" in given
            else None
        ),
    )
    # No preference at all shares the cached plans of requests without the object.
    return None if preferences == ProviderPreferences() else preferences


def request_parameters(body: dict) -> frozenset[str]:
    """The generation parameters a body sets, by the names catalogs list them under
    (``max_completion_tokens`` is ``max_tokens``; a JSON schema answer also needs
    ``structured_outputs``)."""
    names = set()
    for key, value in body.items():
        if value is None:
            continue
        name = PARAMETER_ALIASES.get(key, key)
        if name in REQUEST_PARAMETERS:
            names.add(name)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        names.add("structured_outputs")
    return frozenset(names)


def _text_length(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return _text_length(value.get("text") or value.get("content") or "")
    return 0


def estimate_tokens(body: dict, endpoint: Endpoint) -> tuple[int, int]:
    """Rough ``(input, output)`` token counts: four characters a token, plus overhead."""
    if endpoint is CHAT:
        messages = body["messages"]
        input_tokens = sum(_text_length(m.get("content")) for m in messages) // 4 + 4 * len(
            messages
        )
    elif endpoint is COMPLETIONS:
        input_tokens = _text_length(body["prompt"]) // 4 + 1
    else:
        return _text_length(body["input"]) // 4 + 1, 0
    output = body.get("max_completion_tokens") or body.get("max_tokens")
    if not isinstance(output, int) or output <= 0:
        output = settings.GATEWAY_ESTIMATED_COMPLETION_TOKENS
    return input_tokens, output


# What reaches a model as its prompt, for the budget's bound on prompt tokens.
PROMPT_FIELDS = ("messages", "prompt", "input", "tools", "functions")


def prompt_size(body: dict) -> int:
    """The UTF-8 bytes of everything in ``body`` that becomes the prompt."""
    parts = [body[name] for name in PROMPT_FIELDS if body.get(name) is not None]
    return jsoncodec.encoded_size(parts)


def prompt_bound(body: dict, model: Model, size: int | None = None) -> int:
    """The most prompt tokens a request may be billed for when ``model`` serves it.

    The four-characters-a-token estimate is a guess that falls short for code, CJK text
    and short chat turns; a token of the byte-level tokenizers models use is at least one
    byte, so the UTF-8 bytes of everything that becomes the prompt (messages with their
    roles and tool calls, tool definitions) bound the text, and the model's context
    bounds the whole. Images and audio are billed beyond this. ``size`` is
    ``prompt_size(body)`` when the caller already has it (it is the same for every model).
    """
    if size is None:
        size = prompt_size(body)
    if model.context_length:
        size = min(size, model.context_length)
    return size


def output_bound(body: dict, endpoint: Endpoint, input_tokens: int, model: Model) -> int:
    """The most completion tokens a request may be billed for when ``model`` serves it.

    The request's own max_tokens, else the model's max output, else what its context
    leaves after the prompt, else GATEWAY_BUDGET_MAX_OUTPUT_TOKENS; times ``n`` choices.
    Anthropic always gets an explicit max_tokens from the translation: that one.
    """
    if endpoint is EMBEDDINGS:
        return 0
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        tokens = requested
    elif model.max_completion_tokens:
        tokens = model.max_completion_tokens
    elif model.provider.api_format == ApiFormat.ANTHROPIC:
        tokens = anthropic.DEFAULT_MAX_TOKENS
    elif model.context_length:
        tokens = max(model.context_length - input_tokens, 1)
    else:
        tokens = settings.GATEWAY_BUDGET_MAX_OUTPUT_TOKENS
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        tokens *= choices
    return tokens


def open_call(
    runtime: Runtime,
    key: ClientKeyInfo,
    raw_body: bytes,
    endpoint: Endpoint,
    *,
    request_id: str | None = None,
    dialect: Dialect = OPENAI,
) -> GatewayCall:
    """The request as the later stages see it, or an ``InvalidRequest``."""
    body = parse_body(raw_body, endpoint, dialect)
    preferences = provider_preferences(body)
    options = body.get("stream_options")
    input_tokens, output_tokens = estimate_tokens(body, endpoint)
    call = GatewayCall(
        runtime=runtime,
        key=key,
        endpoint=endpoint,
        body=body,
        stream=bool(body.get("stream")) and endpoint is not EMBEDDINGS,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        requested_model=body["model"],
        fallback_models=tuple(m for m in (body.get("models") or ()) if m != body["model"]),
        estimated_input_tokens=input_tokens,
        estimated_output_tokens=output_tokens,
        dialect=dialect,
        preferences=preferences,
        # Only when asked for: the parameters are part of the plan cache key.
        parameters=(
            request_parameters(body)
            if preferences is not None and preferences.require_parameters
            else frozenset()
        ),
        # Not the field's default: that would make an id only to replace it.
        request_id=request_id if request_id is not None else new_request_id(),
    )
    return call
