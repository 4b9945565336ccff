"""One transform from any provider's raw model record to a :class:`ModelRecord`.

Providers differ in where a value sits and in which unit a price is quoted, far less in
what the values mean. So there is one transform, driven by the provider's
:class:`~sync.spec.ProviderSpec`: ordered lists of paths per field, a price unit per
price source, and an optional ``prepare`` hook for the few shapes that paths cannot
express (a list of per-host offers, a capabilities object).

Every price ends up as USD per token in a :class:`~decimal.Decimal` with the 18 decimal
places of the ``models`` columns. Values that are unknown, variable (OpenRouter's ``"-1"``)
or nonsensical become ``None``: a zero would read as "free" and a negative would pay the
caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sync.spec import Unit

if TYPE_CHECKING:
    from sync.spec import ProviderSpec

PRICE_QUANTUM = Decimal("1e-18")
# Ten integer digits fit the price columns (max_digits 28, decimal_places 18).
MAX_PRICE = Decimal("1e10")
MAX_INT = 2**31 - 1  # PositiveIntegerField is a 32-bit integer on PostgreSQL

_MISSING = object()


class MalformedRecord(ValueError):
    """A single upstream record cannot be turned into a model; the rest of the list can."""


def to_decimal(value: Any) -> Decimal | None:
    """A number from a JSON value, without binary float noise; ``None`` if it is not one.

    Floats are read through 12 significant digits: DeepInfra ships values such as
    ``2.5999999999999996`` whose noise sits in the 16th digit, and no provider quotes a
    price with more than a dozen meaningful digits.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return None
            return Decimal(format(value, ".12g"))
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            number = Decimal(text)
            return number if number.is_finite() else None
    except (InvalidOperation, ValueError):
        return None
    return None


def convert_price(value: Any, unit: Unit) -> Decimal | None:
    """A raw price in ``unit`` as USD (per token for token units), or ``None``."""
    number: Decimal | None
    if unit is Unit.SCALED_AMOUNT:
        if not isinstance(value, Mapping):
            return None
        currency = value.get("currency", "USD")
        amount, scale = to_decimal(value.get("amount")), to_decimal(value.get("scale"))
        if amount is None or scale is None or currency != "USD":
            return None
        number = amount.scaleb(-int(scale))
    else:
        number = to_decimal(value)
        if number is None:
            return None
        number = number * unit.factor
    if number < 0 or number >= MAX_PRICE:
        return None
    return number.quantize(PRICE_QUANTUM).normalize() if number else Decimal(0)


# --- Reading values out of nested records -------------------------------------------------


@functools.lru_cache(maxsize=2048)
def _path_parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted path (``"metadata.pricing.input_tokens"``), or ``_MISSING``."""
    # Runs millions of times per large sync: concrete dict checks, no ABC isinstance.
    current = record
    for part in _path_parts(path):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
            if current is _MISSING:
                return _MISSING
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def first(record: Any, paths: Iterable[str]) -> Any:
    """The first present, non-null value among ``paths``; ``None`` if there is none."""
    for path in paths:
        value = lookup(record, path)
        if value is not _MISSING and value is not None:
            return value
    return None


def as_text(value: Any, max_length: int | None = None) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    text = str(value).strip()
    return text[:max_length] if max_length else text


def as_positive_int(value: Any) -> int | None:
    """A token count; 0, negatives and garbage mean "unknown" (OpenRouter, Together, Vercel)."""
    number = to_decimal(value)
    if number is None or number <= 0 or number != number.to_integral_value():
        return None
    return int(number) if number <= MAX_INT else None


def as_datetime(value: Any) -> dt.datetime | None:
    """Unix seconds, ISO 8601 (nanoseconds allowed), ``YYYY-MM-DD`` or ``{year,month,day}``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            # 0 is "unknown" on DeepInfra and Cerebras, not 1970.
            return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value > 0 else None
        if isinstance(value, Mapping):
            year, month, day = value.get("year"), value.get("month"), value.get("day")
            return dt.datetime(int(year), int(month or 1), int(day or 1), tzinfo=dt.UTC)
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.isdigit():
                return as_datetime(int(text))
            # Python reads at most microseconds; Ollama writes nanoseconds.
            text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
            parsed = dt.datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        return None
    return None


def as_string_list(value: Any) -> list[str]:
    """A list of strings from a JSON list or a comma-separated string (AiHubMix)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(item).strip() for item in value if isinstance(item, (str, int))]
    return []


# --- Modalities and capabilities ----------------------------------------------------------

MODALITY_SYNONYMS = {
    "speech": "audio",
    "embeddings": "embedding",
    "transcribe": "transcription",
    "images": "image",
    "pdf": "file",
}

# Provider model types / categories / kinds -> (input, output) modalities.
TYPE_MODALITIES: dict[str, tuple[list[str], list[str]]] = {
    "chat": (["text"], ["text"]),
    "language": (["text"], ["text"]),
    "llm": (["text"], ["text"]),
    "code": (["text"], ["text"]),
    "moderation": (["text"], ["text"]),
    "text-generation": (["text"], ["text"]),
    "hf_base_model": (["text"], ["text"]),
    "embedding": (["text"], ["embedding"]),
    "embeddings": (["text"], ["embedding"]),
    "embedding_model": (["text"], ["embedding"]),
    "rerank": (["text"], ["rerank"]),
    "image": (["text"], ["image"]),
    "text-to-image": (["text"], ["image"]),
    "flumina_base_model": (["text"], ["image"]),
    "image-to-image": (["text", "image"], ["image"]),
    "video": (["text"], ["video"]),
    "text-to-video": (["text"], ["video"]),
    "image-to-video": (["text", "image"], ["video"]),
    "audio": (["text"], ["audio"]),
    "tts": (["text"], ["audio"]),
    "text-to-speech": (["text"], ["audio"]),
    "transcribe": (["audio"], ["transcription"]),
    "speech-to-text": (["audio"], ["transcription"]),
    "automatic-speech-recognition": (["audio"], ["transcription"]),
    "zero-shot-image-classification": (["image", "text"], ["text"]),
    "training": (["image", "text"], ["file"]),
}

# Id-only listings (OpenAI, Cerebras, Nebius, ...) still mix in non-chat models; their
# names are the only signal. Checked in order, first match wins.
ID_HINTS: list[tuple[re.Pattern[str], tuple[list[str], list[str]]]] = [
    (re.compile(r"embed", re.I), (["text"], ["embedding"])),
    (re.compile(r"rerank", re.I), (["text"], ["rerank"])),
    (re.compile(r"whisper|transcribe|distil-whisper", re.I), (["audio"], ["transcription"])),
    (re.compile(r"(^|[-/])tts|playai-tts|orpheus", re.I), (["text"], ["audio"])),
    (
        re.compile(r"dall-e|gpt-image|imagen|-image-\d|flux|stable-diffusion", re.I),
        (["text"], ["image"]),
    ),
    (re.compile(r"ocr", re.I), (["image", "file"], ["text"])),
]

TOOL_TOKENS = {
    "tools",
    "tool_choice",
    "function_calling",
    "tool_use",
    "supports_tools",
    "function_call",
}
JSON_TOKENS = {
    "response_format",
    "json_mode",
    "structured_outputs",
    "structured_output",
    "json",
    "supports_structured_output",
}
VISION_TOKENS = {"vision", "image_input", "supports_image_input", "multimodal"}
STREAMING_OUTPUTS = {"text", "audio"}


def normalise_modalities(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        name = MODALITY_SYNONYMS.get(value.strip().lower(), value.strip().lower())
        if name and name not in seen:
            seen.append(name)
    return seen


def feature_tokens(value: Any, name: str = "") -> set[str]:
    """Lower-case snake tokens from feature lists, comma strings, flag objects and booleans.

    ``{"vision": true}`` (Mistral) and ``{"image_input": {"supported": true}}`` (Anthropic)
    give their true keys; a top-level boolean such as Fireworks' ``supportsTools`` gives its
    own name when true.
    """
    tokens: set[str] = set()
    if isinstance(value, bool):
        if value and name:
            tokens.add(_snake(name))
    elif isinstance(value, (list, str)):
        tokens.update(_snake(item) for item in as_string_list(value))
    elif isinstance(value, Mapping):
        for key, flag in value.items():
            if isinstance(flag, Mapping):
                flag = flag.get("supported", False)
            if flag is True:
                tokens.add(_snake(str(key)))
    return tokens


@functools.lru_cache(maxsize=8192)
def _snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text.strip())
    return re.sub(r"[-\s.]+", "_", text).lower()


# --- The normalised record ----------------------------------------------------------------

PRICE_FIELDS = (
    "pricing_prompt",
    "pricing_completion",
    "pricing_image",
    "pricing_request",
    "pricing_web_search",
    "pricing_internal_reasoning",
    "pricing_cache_read",
    "pricing_cache_write",
)


@dataclasses.dataclass
class ModelRecord:
    """One model as the catalog stores it; field names are the ``models`` columns."""

    provider_model_id: str
    model_name: str
    author: str = ""
    canonical_slug: str = ""
    description: str = ""
    context_length: int | None = None
    max_completion_tokens: int | None = None
    modality: str = "text->text"
    input_modalities: list[str] = dataclasses.field(default_factory=list)
    output_modalities: list[str] = dataclasses.field(default_factory=list)
    tokenizer: str = ""
    instruct_type: str = ""
    supports_streaming: bool = True
    supports_vision: bool = False
    supports_tools: bool = False
    supports_json_mode: bool = False
    supported_parameters: list[str] = dataclasses.field(default_factory=list)
    is_moderated: bool = False
    pricing_prompt: Decimal | None = None
    pricing_completion: Decimal | None = None
    pricing_image: Decimal | None = None
    pricing_request: Decimal | None = None
    pricing_web_search: Decimal | None = None
    pricing_internal_reasoning: Decimal | None = None
    pricing_cache_read: Decimal | None = None
    pricing_cache_write: Decimal | None = None
    hugging_face_id: str = ""
    per_request_limits: dict | None = None
    upstream_created_at: dt.datetime | None = None
    deprecated_at: dt.datetime | None = None
    is_active: bool = True
    raw: dict = dataclasses.field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        """Field values by column name; shallow, because the catalog holds many thousands."""
        return {name: getattr(self, name) for name in RECORD_FIELDS}

    def to_json(self) -> dict[str, Any]:
        """JSON-safe values: Decimals as strings, datetimes in ISO 8601."""
        data = self.as_row()
        for key, value in data.items():
            if isinstance(value, Decimal):
                data[key] = format(value, "f")
            elif isinstance(value, dt.datetime):
                data[key] = value.isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in PRICE_FIELDS:
            if values.get(key) is not None:
                values[key] = Decimal(values[key])
        for key in ("upstream_created_at", "deprecated_at"):
            if values.get(key):
                values[key] = dt.datetime.fromisoformat(values[key])
        return cls(**values)

    def content_hash(self) -> str:
        """Digest of everything the row stores, so an unchanged re-sync can skip the write."""
        return self.digest_and_raw_json()[0]

    def digest_and_raw_json(self) -> tuple[str, str]:
        """The content digest and the raw record's JSON text, serialised once for both."""
        raw_json = json.dumps(self.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = self.to_json()
        del data["raw"]
        head = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(f"{head}{raw_json}".encode()).hexdigest(), raw_json


RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ModelRecord))

# --- The transform ------------------------------------------------------------------------


def transform_record(spec: ProviderSpec, raw: Any) -> ModelRecord:
    """Normalise one raw record with the paths and units declared by ``spec``."""
    if not isinstance(raw, Mapping):
        raise MalformedRecord(f"expected an object, got {type(raw).__name__}")
    record = dict(spec.prepare(raw)) if spec.prepare else dict(raw)
    fields = spec.field_paths

    model_id = as_text(first(record, fields["id"]))
    for prefix in spec.strip_id_prefixes:
        if model_id.startswith(prefix):
            model_id = model_id[len(prefix) :]
    if not model_id:
        raise MalformedRecord("record has no model id")
    if len(model_id) > 300:
        raise MalformedRecord("model id longer than 300 characters")

    hugging_face_id = _hugging_face_id(first(record, fields["hugging_face_id"]))
    if not hugging_face_id and spec.id_is_hugging_face_id and "/" in model_id:
        hugging_face_id = model_id

    tokens: set[str] = set()
    for path in fields["features"]:
        tokens |= feature_tokens(lookup(record, path), path.rsplit(".", 1)[-1])
    parameters = as_string_list(first(record, fields["supported_parameters"]))
    tokens |= {_snake(p) for p in parameters}

    inputs, outputs = _modalities(spec, record, model_id)
    if tokens & VISION_TOKENS and inputs and "image" not in inputs:
        # A "vision" tag (Vercel, DeepInfra) where the input list was only guessed.
        inputs.append("image")
    modality = as_text(first(record, fields["modality"]), 100)
    if not modality and (inputs or outputs):
        modality = f"{'+'.join(inputs)}->{'+'.join(outputs)}"

    prices: dict[str, Decimal | None] = {}
    for field in PRICE_FIELDS:
        prices[field] = None
        for path, unit in spec.price_sources.get(field, ()):
            value = lookup(record, path)
            if value is not _MISSING and value is not None:
                prices[field] = convert_price(value, unit)
                break
    if spec.token_prices_apply and not spec.token_prices_apply(record):
        for field in (
            "pricing_prompt",
            "pricing_completion",
            "pricing_cache_read",
            "pricing_cache_write",
            "pricing_internal_reasoning",
        ):
            prices[field] = None

    active = first(record, fields["active"])
    per_request_limits = first(record, fields["per_request_limits"])
    return ModelRecord(
        provider_model_id=model_id,
        model_name=as_text(first(record, fields["name"]), 300) or model_id,
        author=_author(spec, record, model_id, hugging_face_id),
        canonical_slug=as_text(first(record, fields["canonical_slug"]), 300),
        description=as_text(first(record, fields["description"])),
        context_length=as_positive_int(first(record, fields["context_length"])),
        max_completion_tokens=as_positive_int(first(record, fields["max_completion_tokens"])),
        modality=modality,
        input_modalities=inputs,
        output_modalities=outputs,
        tokenizer=as_text(first(record, fields["tokenizer"]), 100),
        instruct_type=as_text(first(record, fields["instruct_type"]), 100),
        supports_streaming=bool(set(outputs or ["text"]) & STREAMING_OUTPUTS),
        supports_vision="image" in inputs or bool(tokens & VISION_TOKENS),
        supports_tools=bool(tokens & TOOL_TOKENS),
        supports_json_mode=bool(tokens & JSON_TOKENS),
        supported_parameters=parameters,
        is_moderated=first(record, fields["is_moderated"]) is True,
        hugging_face_id=hugging_face_id,
        per_request_limits=per_request_limits if isinstance(per_request_limits, dict) else None,
        upstream_created_at=as_datetime(first(record, fields["created"])),
        deprecated_at=as_datetime(first(record, fields["deprecated"])),
        is_active=_is_active(active),
        raw=dict(raw),
        **prices,
    )


def _is_active(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() not in {"deprecated", "inactive", "disabled", "false"}
    return True


def _hugging_face_id(value: Any) -> str:
    """``org/name`` from an id or a ``https://huggingface.co/org/name`` link; "" for none."""
    text = as_text(value)
    text = re.sub(r"^https?://(www\.)?huggingface\.co/", "", text).strip("/")
    return text[:300] if text.count("/") == 1 else ""


def _modalities(spec: ProviderSpec, record: Mapping, model_id: str) -> tuple[list, list]:
    fields = spec.field_paths
    inputs = normalise_modalities(as_string_list(first(record, fields["input_modalities"])))
    outputs = normalise_modalities(as_string_list(first(record, fields["output_modalities"])))
    if inputs and outputs:
        return inputs, outputs
    kind = as_text(first(record, fields["type"])).lower()
    guess = TYPE_MODALITIES.get(kind)
    if guess is None:
        guess = next((pair for pattern, pair in ID_HINTS if pattern.search(model_id)), None)
    # A type the table does not know says "not a chat model": better no modality than a
    # wrong "text->text".
    if guess is None and not kind and spec.default_modalities:
        guess = spec.default_modalities
    if guess is None:
        return inputs, outputs
    return inputs or list(guess[0]), outputs or list(guess[1])


GENERIC_OWNERS = {"system", "library", "unknown", "vllm", "sglang", "user", "organization-owner"}


def _author(spec: ProviderSpec, record: Mapping, model_id: str, hugging_face_id: str) -> str:
    author = as_text(first(record, spec.field_paths["author"]), 200)
    if author:
        return author
    if spec.author_from_id and "/" in model_id:
        return model_id.split("/", 1)[0].lstrip("~@")[:200]
    if hugging_face_id:
        return hugging_face_id.split("/", 1)[0][:200]
    if spec.default_author:
        return spec.default_author
    owner = as_text(first(record, spec.field_paths["owner"]), 200)
    return "" if owner.lower() in GENERIC_OWNERS else owner


def cheapest_offer(offers: Any, price_path: str, *, status_path: str = "", live: str = "") -> Any:
    """The offer with the lowest price at ``price_path`` among the live ones (aggregators).

    Offers without a price sort last; when none is live, all are considered, so a model
    that is only in staging still lands with its data.
    """
    if not isinstance(offers, list):
        return None
    candidates = [o for o in offers if isinstance(o, Mapping)]
    if status_path and live:
        running = [o for o in candidates if lookup(o, status_path) == live]
        candidates = running or candidates
    if not candidates:
        return None

    def price(offer: Mapping) -> tuple[int, Decimal]:
        value = to_decimal(lookup(offer, price_path))
        return (0, value) if value is not None and value >= 0 else (1, Decimal(0))

    return min(candidates, key=price)
